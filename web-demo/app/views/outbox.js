// The visible outbox: every action not yet accepted by the server, oldest first. Each ends
// accepted (it leaves the list) or refused with the server's reason (kept until dismissed).
import { h, mount } from "../dom.js";
import { convTitle, describeIntent } from "../format.js";
import { render } from "../state.js";

const STATE_LABEL = {
  pending: "waiting for network",
  sent: "sent, awaiting server",
  rejected: "refused",
};

export function renderOutbox(el, session) {
  const { client, account } = session;
  const items = client.outbox();
  const titleOf = (conv) => convTitle(client.conversation(conv), account);
  const waiting = items.filter((i) => i.status.state !== "rejected").length;
  const refused = items.length - waiting;
  const open = el.open;
  mount(
    el,
    h(
      "summary",
      { id: "outbox-summary", dataset: { waiting, refused } },
      `Outbox · ${waiting} waiting`,
      refused > 0 && ` · ${refused} refused`,
    ),
    items.length === 0
      ? h("p", { class: "why", style: "padding:0 12px 10px;margin:0" }, "Everything you did has reached the server.")
      : h(
          "ol",
          { id: "outbox" },
          items.map((item) =>
            h(
              "li",
              {
                class: item.status.state,
                dataset: { id: item.id, state: item.status.state, type: item.intent.type },
              },
              h("div", {}, describeIntent(item.intent, titleOf)),
              h("div", { class: "state" }, STATE_LABEL[item.status.state] ?? item.status.state),
              item.status.state === "rejected" &&
                h(
                  "div",
                  { class: "why" },
                  `${item.status.reason} (${item.status.code}) `,
                  h(
                    "button",
                    {
                      class: "link",
                      onclick: () => {
                        client.dismiss(item.id);
                        render();
                      },
                    },
                    "Dismiss",
                  ),
                ),
            ),
          ),
        ),
  );
  el.open = open;
}
