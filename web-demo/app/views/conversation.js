// One conversation: header, banners (removed, archived, closed), pinned messages, the
// timeline with day separators and refused messages of mine, who is typing, and the composer.
// Used in the middle column and, for threads, in the side panel.
import { h, mount } from "../dom.js";
import { dayKey, dayLabel, displayName } from "../format.js";
import { render, ui } from "../state.js";
import { Composer } from "./composer.js";
import { renderHeader } from "./header.js";
import { messageView, rejectedView } from "./message.js";
import { threadsByMessage } from "./thread.js";

/** Consecutive messages of one author within this long share one avatar. */
const GROUP_MS = 5 * 60_000;

export class ConversationView {
  constructor(session, conv, { inThread = false, onClose } = {}) {
    this.session = session;
    this.conv = conv;
    this.inThread = inThread;
    this.onClose = onClose;
    this.header = h("header", { class: "conv-header" });
    this.banner = h("div");
    this.pins = h("div");
    this.timeline = h("section", { class: "timeline", "aria-label": "Messages", dataset: { conv } });
    this.typing = h("div", { class: "typing", "aria-live": "polite" });
    this.composer = new Composer(session, conv);
    this.root = h(
      "section",
      { class: "main", dataset: { conv } },
      this.header,
      this.banner,
      this.pins,
      this.timeline,
      this.typing,
      this.composer.root,
    );
    this.scrolled = false;
    this.lastMarked = undefined;
  }

  update() {
    const { client, account } = this.session;
    const conv = client.conversation(this.conv);
    if (!conv) {
      mount(this.timeline, h("p", { class: "placeholder" }, "Loading the conversation…"));
      return;
    }
    const summary = client.conversations().find((s) => s.conv === this.conv);
    renderHeader(this.header, this.session, conv, summary, { inThread: this.inThread, onClose: this.onClose });
    this.renderBanner(conv);
    this.renderPins(conv);
    const items = client.timeline(this.conv);
    this.renderTimeline(conv, items);
    const typing = client.typing(this.conv).filter((a) => a !== account);
    this.typing.textContent =
      typing.length === 0 ? "" : `${typing.map(displayName).join(", ")} ${typing.length === 1 ? "is" : "are"} typing…`;
    this.composer.update();
    if (summary?.unread > 0) this.markRead(conv, items);
  }

  renderBanner(conv) {
    const me = conv.members.find((m) => m.account === this.session.account);
    const revoked = ui.revoked.get(this.conv);
    let text;
    let danger = false;
    if (me && me.status !== "active") {
      text = `You ${me.status === "left" ? "left" : `were ${me.status} from`} this conversation.`;
      danger = true;
    } else if (revoked) {
      text = `You no longer have access: ${revoked}.`;
      danger = true;
    } else if (conv.lifecycle.state === "archived") {
      text = "This conversation is archived. A new message from the client reopens it.";
    } else if (conv.lifecycle.state === "closed") {
      text = "This conversation is closed (finalized). Only moderators and above post until it is reopened.";
    }
    mount(this.banner, text && h("div", { class: `banner${danger ? " danger" : ""}`, role: "note" }, text));
  }

  renderPins(conv) {
    if (conv.pins.length === 0) return mount(this.pins);
    const byId = new Map(this.session.client.timeline(this.conv).map((i) => [i.message.id, i.message]));
    mount(
      this.pins,
      h(
        "div",
        { class: "pins", id: this.inThread ? undefined : "pins" },
        "📌 ",
        conv.pins.map((p) => {
          const m = byId.get(p.message);
          return h(
            "button",
            {
              class: "link",
              onclick: () => document.querySelector(`.msg[data-id="${p.message}"]`)?.scrollIntoView({ block: "center" }),
            },
            m ? `${displayName(m.author)}: ${(m.body || m.kind).slice(0, 40)}` : "an older message",
          );
        }),
      ),
    );
  }

  renderTimeline(conv, items) {
    const { client, account } = this.session;
    const el = this.timeline;
    const atBottom = !this.scrolled || el.scrollHeight - el.scrollTop - el.clientHeight < 60;
    const keep = el.scrollTop;

    const outbox = client.outbox();
    const sends = new Map();
    for (const o of outbox) if (o.intent.type === "send") sends.set(o.intent.message.id, o);
    const position = new Map(items.map((item, i) => [item.message.id, i]));
    // Refused messages of mine: the engine drops them from the timeline; they stay visible
    // here, at the end, with the reason, until dismissed.
    const rejected = outbox.filter(
      (o) =>
        o.intent.type === "send" &&
        o.intent.conv === this.conv &&
        o.status.state === "rejected" &&
        !position.has(o.intent.message.id),
    );
    const seenBy = new Map();
    let lastSeenByOthers = -1;
    for (const [reader, message] of Object.entries(conv.reads)) {
      if (reader === account || !position.has(message)) continue;
      seenBy.set(message, [...(seenBy.get(message) ?? []), reader]);
      lastSeenByOthers = Math.max(lastSeenByOthers, position.get(message));
    }
    const ctx = {
      session: this.session,
      conv,
      byId: new Map(items.map((i) => [i.message.id, i.message])),
      pinned: new Set(conv.pins.map((p) => p.message)),
      seenBy,
      threads: threadsByMessage(client),
      sendOf: (item) => (item.pending ? sends.get(item.message.id) : undefined),
      seenAfter: (item) => position.get(item.message.id) <= lastSeenByOthers,
      showAuthor: true,
    };

    const nodes = [];
    if (conv.thread) nodes.push(this.parentMessage(conv.thread));
    nodes.push(
      h(
        "div",
        { class: "day" },
        h("button", { class: "link", onclick: () => client.loadOlder(this.conv).then(render) }, "Load older messages"),
      ),
    );
    let previous;
    for (const item of items) {
      const m = item.message;
      if (!previous || dayKey(previous.createdAt) !== dayKey(m.createdAt)) {
        nodes.push(h("div", { class: "day", role: "separator" }, h("span", {}, dayLabel(m.createdAt))));
        previous = undefined;
      }
      ctx.showAuthor = !previous || previous.author !== m.author || m.createdAt - previous.createdAt > GROUP_MS;
      nodes.push(messageView(ctx, item));
      previous = m;
    }
    for (const entry of rejected) nodes.push(rejectedView(this.session, entry));
    if (items.length === 0 && rejected.length === 0) {
      nodes.push(h("p", { class: "placeholder" }, "No messages yet. Say hello!"));
    }
    mount(el, nodes);
    if (atBottom) el.scrollTop = el.scrollHeight;
    else el.scrollTop = keep;
    if (items.length > 0) this.scrolled = true;
  }

  parentMessage(link) {
    const parent = this.session.client.timeline(link.parent).find((i) => i.message.id === link.message)?.message;
    return h(
      "div",
      { class: "banner", style: "margin:-12px -16px 8px" },
      "🧵 Thread on ",
      parent ? `${displayName(parent.author)}: “${(parent.body || parent.kind).slice(0, 120)}”` : "a message",
    );
  }

  /** Moves my read marker to the newest message while I look at unread ones (online only:
   * offline it would only fill the outbox; it catches up when back). */
  markRead(conv, items) {
    const { client, account } = this.session;
    const newest = [...items].reverse().find((i) => !i.pending);
    if (!newest || document.hidden || !client.online) return;
    const id = newest.message.id;
    if (conv.reads[account] === id || this.lastMarked === id) return;
    if (!conv.members.some((m) => m.account === account && m.status === "active")) return;
    this.lastMarked = id;
    client.markRead(this.conv, id).catch(() => {
      this.lastMarked = undefined;
    });
  }
}
