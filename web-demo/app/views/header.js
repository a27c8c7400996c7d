// A conversation's header: title, kind and lifecycle; members; lifecycle actions (archive,
// close, reopen, lock, delete; block in a direct chat — disabled with the policy's reason
// where not allowed); my own preferences
// (pin to top, mute, keep in the archive list); and, in support threads, "Propose".
import { guarded, h, mount } from "../dom.js";
import { convTitle, displayName, KIND_ICON } from "../format.js";
import { back, note, openPanel, refusalOf, ui } from "../state.js";
import { closeLeadDialog, proposeDialog } from "./dialogs.js";
import { presenceDot, presenceOf, stateOf } from "./presence.js";

export function renderHeader(el, session, conv, summary, { inThread, onClose }) {
  const { client, account } = session;
  const active = conv.members.filter((m) => m.status === "active");
  const can = (action) => client.can({ action, conv: conv.id });
  // A refusal at once is a note under the header (one, the newest), not a toast.
  const act = (_label, promise) => promise.catch((e) => note(conv.id, refusalOf(e)));
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
  // A direct conversation's header shows the other person's presence.
  const peer = conv.kind === "direct" ? active.find((m) => m.account !== account)?.account : undefined;
  const heard = peer && presenceOf(session, conv.id);
  const lifecycle = conv.lifecycle.state;
  const locked = conv.settings.locked;
  const blocked = conv.members.some((m) => m.blocked);
  const blockedByMe = conv.members.some((m) => m.account === account && m.blocked);
  const deleting = () => {
    if (confirm("Delete this conversation for everyone? This cannot be undone.")) {
      act("Delete", client.deleteConversation(conv.id));
    }
  };
  mount(
    el,
    // The phone layout's way back to the list (hidden on wider screens).
    !inThread && h("button", { class: "back", id: "back", onclick: back, "aria-label": "Back to conversations" }, "‹"),
    h("span", { style: "font-size:20px" }, KIND_ICON[conv.kind]),
    h(
      "div",
      { class: "grow" },
      h("h2", { id: inThread ? undefined : "conv-title" }, convTitle(conv, account)),
      h(
        "div",
        { class: "why" },
        peer && [presenceDot(heard, peer), ` ${stateOf(heard, peer)} · `],
        `${conv.kind} · ${active.length} member${active.length === 1 ? "" : "s"}`,
        conv.resource &&
          ` · resource ${conv.resource.resource} · client ${displayName(conv.resource.client)} · owner ${displayName(conv.resource.owner)}`,
        " ",
        lifecycle !== "active" &&
          h("span", { class: `tag ${lifecycle}`, id: inThread ? undefined : "lifecycle" }, lifecycle),
        lifecycle === "closed" &&
          conv.lifecycle.outcome &&
          h(
            "span",
            {
              class: "tag closed",
              id: inThread ? undefined : "lead-outcome",
              dataset: { outcome: conv.lifecycle.outcome },
              title: conv.lifecycle.reason ?? "",
            },
            `${conv.lifecycle.outcome === "closed_won" ? "🏆 won" : "lost"}${conv.lifecycle.lead ? ` · ${conv.lifecycle.lead}` : ""}`,
          ),
        conv.encryption.enabled &&
          h(
            "span",
            { class: "tag e2ee", id: inThread ? undefined : "encrypted", title: `End-to-end encrypted (MLS), key version ${conv.encryption.keyVersion ?? "–"}` },
            "🔐 encrypted",
          ),
        locked && h("span", { class: "tag closed", id: inThread ? undefined : "locked" }, "🔒 locked"),
        blocked && h("span", { class: "tag closed", id: inThread ? undefined : "blocked" }, "⛔ blocked"),
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
          conv.kind === "support" &&
            guarded("🏁 Close lead", can("close"), () => closeLeadDialog(session, conv), {
              dataset: { action: "close-lead" },
              title: "Close with the lead's outcome: won or lost, and why",
            }),
        ],
      lifecycle !== "active" &&
        lifecycle !== "deleted" &&
        guarded("Reopen", can("reopen"), () => act("Reopen", client.reopen(conv.id)), {
          dataset: { action: "reopen" },
        }),
      conv.kind !== "direct" &&
        lifecycle !== "deleted" && [
          guarded(
            locked ? "🔓 Unlock" : "🔒 Lock",
            client.can({ action: "set_setting", conv: conv.id, key: "locked" }),
            () => act("Lock", client.lock(conv.id, !locked)),
            { dataset: { action: locked ? "unlock" : "lock" }, title: "While locked nobody posts, edits or reacts" },
          ),
          guarded("🗑 Delete", client.can({ action: "delete_conversation", conv: conv.id }), deleting, {
            class: "danger",
            dataset: { action: "delete-conversation" },
          }),
        ],
      conv.kind === "direct" &&
        (blockedByMe
          ? guarded("Unblock", { allowed: true }, () => act("Unblock", client.block(conv.id, false)), {
              dataset: { action: "unblock" },
            })
          : guarded("⛔ Block", client.can({ action: "block", conv: conv.id }), () => act("Block", client.block(conv.id, true)), {
              class: "danger",
              dataset: { action: "block" },
              title: "Neither of you can post here until you unblock",
            })),
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
      !inThread &&
        h(
          "button",
          {
            dataset: { action: "settings" },
            title: "Title, description and settings",
            onclick: () => openPanel(ui.panel?.kind === "settings" ? undefined : { kind: "settings" }),
          },
          `⚙ Settings`,
        ),
      onClose && h("button", { onclick: onClose, title: "Close", "aria-label": "Close the thread" }, "✕"),
    ),
  );
}
