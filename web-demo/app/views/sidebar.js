// The left column: who I am and the connection (with the offline switch), new-conversation
// buttons, the conversation list (unread, preview, muted / pinned / archived) and the outbox.
import { h, mount } from "../dom.js";
import { avatar, convTitle, displayName, KIND_ICON, shortWhen } from "../format.js";
import { setOffline, isOfflineByChoice } from "../session.js";
import { render, select, ui } from "../state.js";
import { newConversationDialog } from "./dialogs.js";
import { renderOutbox } from "./outbox.js";

const CONNECTION_LABEL = {
  online: "Online",
  connecting: "Connecting…",
  offline: "Offline",
};

export function createSidebar(onSignOut) {
  const me = h("header", { class: "me" });
  const actions = h("div", { class: "new-conv" });
  const list = h("nav", { class: "conv-list", "aria-label": "Conversations" });
  const outbox = h("details", { class: "outbox", open: true });
  const root = h("aside", { class: "sidebar" }, me, actions, list, outbox);

  mount(
    actions,
    ["group", "channel", "direct", "support"].map((kind) =>
      h(
        "button",
        { dataset: { new: kind }, onclick: () => newConversationDialog(ui.session, kind) },
        `${KIND_ICON[kind]} ${kind === "direct" ? "Direct" : kind[0].toUpperCase() + kind.slice(1)}`,
      ),
    ),
  );

  function update() {
    const session = ui.session;
    if (!session) return;
    renderMe(me, session, onSignOut);
    renderList(list, session);
    renderOutbox(outbox, session);
  }
  return { root, update };
}

function renderMe(el, session, onSignOut) {
  const offline = isOfflineByChoice(session);
  mount(
    el,
    avatar(session.account),
    h(
      "div",
      { class: "who" },
      h("strong", {}, displayName(session.account)),
      h(
        "span",
        { class: "net", id: "connection", dataset: { state: ui.connection } },
        h("span", { class: `dot ${ui.connection}` }),
        CONNECTION_LABEL[ui.connection],
      ),
    ),
    h(
      "label",
      { class: "switch", title: "Work offline: everything you do waits in the outbox" },
      h("input", {
        type: "checkbox",
        id: "offline-switch",
        checked: offline,
        onchange: (e) => setOffline(session, e.target.checked),
      }),
      "Offline",
    ),
    h("button", { class: "link", onclick: onSignOut, id: "sign-out" }, "Sign out"),
  );
}

function renderList(el, session) {
  const { client, account } = session;
  const summaries = client.conversations();
  if (summaries.length === 0) {
    mount(el, h("p", { class: "empty" }, "No conversations yet. Start one above, or wait for someone to add you."));
    return;
  }
  const active = summaries.filter((s) => !s.archived);
  const archived = summaries.filter((s) => s.archived);
  mount(
    el,
    active.map((s) => item(s, client, account)),
    archived.length > 0 &&
      h(
        "button",
        {
          class: "conv-section link",
          onclick: () => {
            ui.showArchived = !ui.showArchived;
            render();
          },
        },
        `${ui.showArchived ? "▾" : "▸"} Archived (${archived.length})`,
      ),
    ui.showArchived && archived.map((s) => item(s, client, account)),
  );
}

function item(summary, client, account) {
  const conv = client.conversation(summary.conv);
  const title = conv ? convTitle(conv, account) : (summary.title ?? summary.conv);
  const kind = summary.kind ?? conv?.kind;
  const classes = ["conv-item", ui.current === summary.conv && "active", summary.muted && "is-muted"];
  return h(
    "div",
    {
      class: classes.filter(Boolean).join(" "),
      role: "button",
      tabindex: 0,
      dataset: { conv: summary.conv, kind, unread: summary.unread },
      onclick: () => select(summary.conv),
      onkeydown: (e) => e.key === "Enter" && select(summary.conv),
    },
    h("span", { class: "avatar", style: "background:#eef0f3;font-size:17px" }, KIND_ICON[kind] ?? "💬"),
    h(
      "div",
      { class: "conv-main" },
      h(
        "div",
        { class: "conv-top" },
        h("span", { class: "conv-title" }, title),
        summary.pinned && h("span", { title: "Pinned" }, "📌"),
        h("span", { class: "conv-time" }, shortWhen(summary.lastActivity)),
      ),
      h(
        "div",
        { class: "conv-preview" },
        h("span", { class: "text" }, summary.lastMessage ?? h("i", {}, "No messages yet")),
        summary.lifecycle !== "active" && h("span", { class: `tag ${summary.lifecycle}` }, summary.lifecycle),
        summary.muted && h("span", { title: "Muted" }, "🔕"),
        summary.unread > 0 &&
          h("span", { class: `badge unread${summary.muted ? " muted-badge" : ""}` }, String(summary.unread)),
      ),
    ),
  );
}
