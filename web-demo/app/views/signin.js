// Sign-in: pick one of the demo server's users (demo tokens exist only in `--demo` mode).
import { h, mount } from "../dom.js";
import { avatar, displayName } from "../format.js";

export function renderSignin(root, { tenant, users }, onPick) {
  mount(
    root,
    h(
      "main",
      { class: "signin" },
      h("h1", {}, "💬 Confab"),
      h(
        "p",
        { class: "muted" },
        "An offline-first chat on the Confab sync engine. Pick a user; open another window ",
        "(or a private one) as someone else to chat between them.",
      ),
      h(
        "div",
        { class: "users" },
        users.map((user) =>
          h(
            "button",
            { dataset: { user }, onclick: () => onPick(user) },
            avatar(user),
            h("span", {}, displayName(user)),
          ),
        ),
      ),
      h("p", { class: "why" }, `Tenant “${tenant}”. Your messages are kept in this browser (IndexedDB) and synced when online.`),
    ),
  );
}
