// The left column: who I am and the connection (with the offline switch, my profile and my
// devices), new-conversation buttons, "Browse" (groups and channels to join) and the
// notification bell, the message search (its results take the list's place while it holds
// text), the conversation list (unread, preview, muted / pinned / archived) and the outbox.
import { forget, h, mount, placeChildren, remountIf } from "../dom.js";
import { avatar, convTitle, displayName, KIND_ICON, shortWhen } from "../format.js";
import * as q from "../queries.js";
import { setOffline, isOfflineByChoice } from "../session.js";
import { render, select, ui } from "../state.js";
import { createBell } from "./bell.js";
import { browseDialog } from "./browse.js";
import { toggleDevices } from "./devices.js";
import { newConversationDialog, profileDialog } from "./dialogs.js";
import { renderOutbox } from "./outbox.js";
import { createSearch } from "./search.js";

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
  const searchSlot = h("div", { class: "search-slot" });
  const root = h("aside", { class: "sidebar" }, me, actions, searchSlot, list, outbox);

  mount(
    actions,
    ["group", "channel", "direct", "support"].map((kind) =>
      h(
        "button",
        { dataset: { new: kind }, onclick: () => newConversationDialog(ui.session, kind) },
        `${KIND_ICON[kind]} ${kind === "direct" ? "Direct" : kind[0].toUpperCase() + kind.slice(1)}`,
      ),
    ),
    h(
      "button",
      { dataset: { action: "browse" }, title: "Browse channels: groups and channels you may join", onclick: () => browseDialog(ui.session) },
      "🔎 Browse",
    ),
  );

  let bell;
  let search;
  function update() {
    const session = ui.session;
    if (!session) return;
    // Made once, with the session (it keeps its own count up to date).
    if (!bell) actions.append((bell = createBell(session)));
    if (!search) {
      search = createSearch(session);
      mount(searchSlot, search.box, search.results);
    }
    renderMe(me, session, onSignOut);
    list.hidden = search.active();
    if (!list.hidden) renderList(list, session);
    renderOutbox(outbox, session);
  }
  return { root, update };
}

function renderMe(el, session, onSignOut) {
  const offline = isOfflineByChoice(session);
  // Rebuilt only when it changed: a new node per redraw is style and layout work, and loses
  // the focus of its buttons.
  const name = displayName(session.account);
  remountIf(el, `${name}\n${ui.connection}\n${offline}`, () => mountMe(el, session, onSignOut, name, offline));
}

function mountMe(el, session, onSignOut, name, offline) {
  mount(
    el,
    avatar(session.account),
    h(
      "div",
      { class: "who" },
      h("strong", {}, name),
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
    h("button", { class: "link", onclick: () => profileDialog(session), id: "edit-profile" }, "Profile"),
    h(
      "button",
      { class: "link", onclick: () => toggleDevices(session), id: "devices-button", title: "The devices signed in as you" },
      "Devices",
    ),
    h("button", { class: "link", onclick: onSignOut, id: "sign-out" }, "Sign out"),
  );
}

function renderList(el, session) {
  const { client, account } = session;
  const summaries = q.conversations(client);
  if (summaries.length === 0) {
    listNodes.delete(el);
    remountIf(el, "empty", () =>
      mount(el, h("p", { class: "empty" }, "No conversations yet. Start one above, or wait for someone to add you.")),
    );
    return;
  }
  // Threads sit under their conversation, not beside it.
  const threadsOf = new Map();
  const known = new Set(summaries.map((s) => s.conv));
  const top = [];
  for (const s of summaries) {
    const parent = s.kind === "thread" ? q.conversation(client, s.conv)?.thread?.parent : undefined;
    if (parent && known.has(parent)) threadsOf.set(parent, [...(threadsOf.get(parent) ?? []), s]);
    else top.push(s);
  }
  // Refused messages of mine never reached anyone: they are not a conversation's preview.
  // conv → their ids.
  const refused = new Map();
  for (const o of q.outbox(client)) {
    if (o.intent.type !== "send" || o.status.state !== "rejected") continue;
    const ids = refused.get(o.intent.conv) ?? new Set();
    refused.set(o.intent.conv, ids.add(o.intent.message.id));
  }
  const shown = (s, nested) => {
    const conv = q.conversation(client, s.conv);
    const kind = s.kind ?? conv?.kind;
    const title = kind === "thread" ? threadTitle(conv, client) : conv ? convTitle(conv, account) : (s.title ?? s.conv);
    const encrypted = conv?.encryption.enabled === true;
    return { summary: s, kind, title, encrypted, preview: preview(s, client, refused.get(s.conv)), nested };
  };
  const rows = (s) => [shown(s, false), ...(threadsOf.get(s.conv) ?? []).map((t) => shown(t, true))];
  const active = top.filter((s) => !s.archived).flatMap(rows);
  const archived = top.filter((s) => s.archived).flatMap(rows);
  // One node per row, built again only when that row changed (a message changes one row's
  // preview, not the list of 50 conversations): a push elsewhere keeps the keyboard focus
  // and the layout of every other row.
  forget(el);
  const before = listNodes.get(el) ?? new Map();
  const after = new Map();
  const node = (key, sig, build) => {
    const old = before.get(key);
    const kept = old?.sig === sig ? old : { sig, el: build() };
    after.set(key, kept);
    return kept.el;
  };
  const row = (r) => node(`c:${r.summary.conv}`, JSON.stringify([r, ui.current === r.summary.conv]), () => item(r));
  const els = active.map(row);
  if (archived.length > 0) {
    const count = archived.filter((r) => !r.nested).length;
    els.push(node("archived", `${ui.showArchived} ${count}`, () => archivedToggle(count)));
    if (ui.showArchived) els.push(...archived.map(row));
  }
  listNodes.set(el, after);
  placeChildren(el, els);
}

/** The conversation list's row nodes by key, with what each was built from. */
const listNodes = new WeakMap();

function archivedToggle(count) {
  return h(
    "button",
    {
      class: "conv-section link",
      "aria-expanded": ui.showArchived ? "true" : "false",
      onclick: () => {
        ui.showArchived = !ui.showArchived;
        render();
      },
    },
    `${ui.showArchived ? "▾" : "▸"} Archived (${count})`,
  );
}

/** The preview: the newest message that reached (or may still reach) the others. `refused`:
 * the ids of this conversation's refused messages of mine. */
function preview(summary, client, refused) {
  if (!refused) return { text: summary.lastMessage, at: summary.lastActivity };
  // The newest refused.size + 1 items hold the newest one not refused, if there is one.
  const items = q.timeline(client, summary.conv, refused.size + 1).filter((i) => !refused.has(i.message.id));
  const last = items.at(-1)?.message;
  if (!last) return { text: undefined, at: summary.lastActivity };
  return { text: last.body || last.kind, at: last.createdAt };
}

/** A thread's name: the message it hangs on (author and words), else its stored title. */
function threadTitle(conv, client) {
  const link = conv?.thread;
  const parent = link && q.timeline(client, link.parent).find((i) => i.message.id === link.message)?.message;
  if (parent) return `${displayName(parent.author)}: “${(parent.body || parent.kind).slice(0, 60)}”`;
  return (conv?.info.title ?? conv?.id ?? "Thread").replace(/^Thread: /, "");
}

function item({ summary, kind, title, encrypted, preview: shown, nested }) {
  const classes = ["conv-item", nested && "nested", ui.current === summary.conv && "active", summary.muted && "is-muted"];
  return h(
    "div",
    {
      class: classes.filter(Boolean).join(" "),
      role: "button",
      tabindex: 0,
      "aria-current": ui.current === summary.conv ? "true" : undefined,
      dataset: { conv: summary.conv, kind, unread: summary.unread },
      onclick: () => select(summary.conv),
      onkeydown: (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          select(summary.conv);
        }
      },
    },
    h("span", { class: "avatar", style: "background:#eef0f3;font-size:17px" }, KIND_ICON[kind] ?? "💬"),
    h(
      "div",
      { class: "conv-main" },
      h(
        "div",
        { class: "conv-top" },
        h("span", { class: "conv-title", title }, title),
        encrypted && h("span", { class: "e2ee", title: "End-to-end encrypted" }, "🔐"),
        summary.pinned && h("span", { title: "Pinned" }, "📌"),
        h("span", { class: "conv-time" }, shortWhen(shown.at)),
      ),
      h(
        "div",
        { class: "conv-preview" },
        h("span", { class: "text" }, shown.text ?? h("i", {}, "No messages yet")),
        summary.lifecycle !== "active" && h("span", { class: `tag ${summary.lifecycle}` }, summary.lifecycle),
        summary.muted && h("span", { title: "Muted" }, "🔕"),
        summary.unread > 0 &&
          h("span", { class: `badge unread${summary.muted ? " muted-badge" : ""}` }, String(summary.unread)),
      ),
    ),
  );
}
