// A conversation's header: title, kind and lifecycle; members; lifecycle actions (archive,
// close, reopen — disabled with the policy's reason where not allowed); my own preferences
// (pin to top, mute, keep in the archive list); and, in support threads, "Propose".
import { guarded, h, mount, toast } from "../dom.js";
import { convTitle, displayName, KIND_ICON } from "../format.js";
import { openPanel, ui } from "../state.js";
import { proposeDialog } from "./dialogs.js";

export function renderHeader(el, session, conv, summary, { inThread, onClose }) {
  const { client, account } = session;
  const active = conv.members.filter((m) => m.status === "active");
  const can = (action) => client.can({ action, conv: conv.id });
  const act = (label, promise) => promise.catch((e) => toast(`${label}: ${e.message}`, "error"));
  const pref = (key, on, label, icon) =>
    h(
      "button",
      {
        class: on ? "primary" : "",
        "aria-pressed": on ? "true" : "false",
        dataset: { pref: key },
        title: label,
        onclick: () => act(label, client.setPreference(conv.id, key, !on)),
      },
      icon,
    );
  const lifecycle = conv.lifecycle.state;
  mount(
    el,
    h("span", { style: "font-size:20px" }, KIND_ICON[conv.kind]),
    h(
      "div",
      { class: "grow" },
      h("h2", { id: inThread ? undefined : "conv-title" }, convTitle(conv, account)),
      h(
        "div",
        { class: "why" },
        `${conv.kind} · ${active.length} member${active.length === 1 ? "" : "s"}`,
        conv.resource &&
          ` · resource ${conv.resource.resource} · client ${displayName(conv.resource.client)} · owner ${displayName(conv.resource.owner)}`,
        " ",
        lifecycle !== "active" &&
          h("span", { class: `tag ${lifecycle}`, id: inThread ? undefined : "lifecycle" }, lifecycle),
      ),
    ),
    h(
      "div",
      { class: "actions" },
      conv.kind === "support" &&
        guarded("📅 Propose", client.can({ action: "send", conv: conv.id, kind: "proposal" }), () =>
          proposeDialog(session, conv),
        { dataset: { action: "propose" } }),
      conv.kind !== "direct" &&
        lifecycle === "active" && [
          guarded("Archive", can("archive"), () => act("Archive", client.archive(conv.id)), {
            dataset: { action: "archive" },
          }),
          guarded("Close", can("close"), () => act("Close", client.close(conv.id)), {
            dataset: { action: "close" },
            title: "Finalize: only moderators and above post until it is reopened",
          }),
        ],
      lifecycle !== "active" &&
        guarded("Reopen", can("reopen"), () => act("Reopen", client.reopen(conv.id)), {
          dataset: { action: "reopen" },
        }),
      !inThread &&
        summary && [
          pref("pinned", summary.pinned, summary.pinned ? "Unpin from the top of my list" : "Pin to the top of my list", "📌"),
          pref("muted", summary.muted, summary.muted ? "Unmute" : "Mute", "🔕"),
          pref("archived", summary.archived, summary.archived ? "Move back to my inbox" : "Move to my archive list", "🗄"),
        ],
      !inThread &&
        h(
          "button",
          {
            dataset: { action: "members" },
            onclick: () => openPanel(ui.panel?.kind === "members" ? undefined : { kind: "members" }),
          },
          `👥 Members`,
        ),
      onClose && h("button", { onclick: onClose, title: "Close" }, "✕"),
    ),
  );
}
