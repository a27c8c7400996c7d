// One conversation: header, banners (removed, archived, closed), pinned messages, the
// timeline with day separators and refused messages of mine, who is typing, and the composer.
// Used in the middle column and, for threads, in the side panel.
import { h, mount, placeChildren, put, refusalNote, remountIf } from "../dom.js";
import { dayKey, dayLabel, displayName } from "../format.js";
import * as q from "../queries.js";
import { note, render, ui } from "../state.js";
import { Composer } from "./composer.js";
import { renderHeader } from "./header.js";
import { liveOf, messageNotes, messageView, patchLive, rejectedView, sameLive } from "./message.js";
import { threadsByMessage } from "./thread.js";

/** Outbox intents about one message (besides sending it): their refusals show under it. */
const ABOUT_MESSAGE = new Set(["react", "pin", "unpin", "edit", "delete", "answer_proposal"]);

/** Whether two node signatures are the same: equal primitives or the same object, or arrays
 * of those equal element by element. */
function sameSig(a, b) {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Consecutive messages of one author within this long share one avatar. */
const GROUP_MS = 5 * 60_000;

/** The newest messages shown at first; "Load older messages" shows this many more. A redraw
 * costs what is shown, not the conversation's history. */
const WINDOW = 100;

/** My read marker moves at most this often per conversation: a busy chat would otherwise
 * cost a change per arriving message, for every member (each marker is written, sent,
 * acknowledged and pushed to the others). The last move of a burst still comes. */
const READ_EVERY_MS = 1_000;

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
    /** Whether the reader is at the newest message, as of the last scroll: kept from scroll
     * events so a redraw does not read the layout (a read after other views changed the DOM
     * forces a layout in the middle of the frame: 8 % of a busy page's main thread). */
    this.atBottom = true;
    this.timeline.addEventListener(
      "scroll",
      () => {
        const el = this.timeline;
        this.atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
      },
      { passive: true },
    );
    this.lastMarked = undefined;
    /** The timeline's nodes by key (message id, day, ...): { sig, el }. A node is rebuilt only
     * when what it shows changed, and never moved when its place did not: a push does not
     * touch the other messages (a text selection in them survives). */
    this.nodes = new Map();
    /** How many of the newest messages the timeline shows. */
    this.window = WINDOW;
    /** What every message's look depends on besides itself, as of the last redraw. */
    this.policy = undefined;
  }

  /** The view goes away (another conversation is shown): keep the draft. */
  dispose() {
    clearTimeout(this.markTimer);
    this.composer.dispose();
  }

  update() {
    const { client, account } = this.session;
    const conv = q.conversation(client, this.conv);
    if (!conv) {
      this.nodes = new Map();
      mount(this.timeline, h("p", { class: "placeholder" }, "Loading the conversation…"));
      return;
    }
    const summary = q.conversations(client).find((s) => s.conv === this.conv);
    // Header, banner and pins are rebuilt only when what they show changed (a push of a
    // message keeps them, and the keyboard focus in them). The member list, the largest part
    // of these signatures, is serialized once per change of the conversation (the client
    // hands out the same object until then): a redraw in a 1,000-member group costs what it
    // costs in a group of 2.
    const { members, lifecycle } = this.shapeOf(conv);
    const shown = [conv.info, conv.kind, conv.settings, conv.resource ?? null];
    const prefs = summary && [summary.pinned, summary.muted, summary.archived];
    remountIf(this.header, `${members}\n${lifecycle}\n${JSON.stringify([shown, prefs, ui.panel?.kind ?? null])}`, () =>
      renderHeader(this.header, this.session, conv, summary, { inThread: this.inThread, onClose: this.onClose }),
    );
    remountIf(this.banner, `${members}\n${lifecycle}\n${JSON.stringify([ui.revoked.get(this.conv) ?? null, ui.notes.get(this.conv) ?? null])}`, () =>
      this.renderBanner(conv),
    );
    const items = this.shownItems();
    this.renderPins(conv, items);
    this.renderTimeline(conv, items, `${members}\n${lifecycle}`);
    const typing = client.typing(this.conv).filter((a) => a !== account);
    const typingText =
      typing.length === 0 ? "" : `${typing.map(displayName).join(", ")} ${typing.length === 1 ? "is" : "are"} typing…`;
    put(this.typing, "textContent", typingText);
    this.composer.update();
    // Delivery markers are the client's own (docs/SCHEMA.md, "Delivery markers"): it moves them as
    // messages arrive, where they stay cheap (not in channels or large groups).
    if (summary?.unread > 0) this.markRead(conv, items);
    if (!this.inThread && ui.jump?.conv === this.conv) this.jumpTo(ui.jump.message);
  }

  /** Shows message `id` (a search result): widens the window to it, loading older buckets
   * until it is there (or the start is reached), then scrolls it to the middle and flashes it. */
  jumpTo(id) {
    const el = this.timeline.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (el) {
      ui.jump = undefined;
      el.scrollIntoView({ block: "center" });
      el.classList.add("flash", "found");
      setTimeout(() => el.classList.remove("flash", "found"), 2_000);
      return;
    }
    const { client } = this.session;
    const all = client.timeline(this.conv);
    // Not loaded yet: the redraw after the conversation's newest part arrives comes back here.
    if (all.length === 0) return;
    const at = all.findIndex((i) => i.message.id === id);
    if (at >= 0) {
      this.window = Math.max(this.window, all.length - at);
      this.scrolled = true;
      this.atBottom = false;
      render();
      return;
    }
    if (this.jumping) return;
    this.jumping = true;
    client
      .loadOlder(this.conv)
      .then((more) => {
        if (!more && !client.timeline(this.conv).some((i) => i.message.id === id)) ui.jump = undefined;
      })
      .catch(() => (ui.jump = undefined))
      .finally(() => {
        this.jumping = false;
        render();
      });
  }

  /** What the views read of `conv` besides its parts shown as they are: the member list and
   * lifecycle serialized (signatures) and the active members, made again only for a new
   * conversation object. */
  shapeOf(conv) {
    if (this.shape?.conv !== conv) {
      this.shape = {
        conv,
        members: JSON.stringify(conv.members),
        lifecycle: JSON.stringify(conv.lifecycle),
        active: new Set(conv.members.filter((m) => m.status === "active").map((m) => m.account)),
      };
    }
    return this.shape;
  }

  /** The newest `window` messages. While the reader is scrolled up, new ones widen the
   * window instead of pushing the oldest shown out from under them. */
  shownItems() {
    const { client } = this.session;
    let items = q.timeline(client, this.conv, this.window);
    const reading = this.scrolled && !this.atBottom;
    if (reading) {
      const arrived = items.filter((i) => !this.nodes.has(`m:${i.message.id}`)).length;
      if (arrived > 0) {
        this.window += arrived;
        items = q.timeline(client, this.conv, this.window);
      }
    }
    return items;
  }

  /** "Load older messages": shows older loaded messages, else loads the next older bucket. */
  showOlder() {
    const { client } = this.session;
    const loaded = client.timeline(this.conv, { limit: this.window + 1 }).length;
    this.window += WINDOW;
    if (loaded > this.window - WINDOW) render();
    else client.loadOlder(this.conv).then(render);
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
      // A refusal's sentence says it already; the server's revocation reason needs words.
      text = revoked.startsWith("You ") ? revoked : `You no longer have access: ${revoked}.`;
      danger = true;
    } else if (conv.lifecycle.state === "archived") {
      text = "This conversation is archived. A new message from the client reopens it.";
    } else if (conv.lifecycle.state === "closed") {
      text = "This conversation is closed (finalized). Only moderators and above post until it is reopened.";
    }
    const refused = ui.notes.get(this.conv);
    mount(
      this.banner,
      text && h("div", { class: `banner${danger ? " danger" : ""}`, role: "note" }, text),
      refused &&
        refusalNote(
          refused,
          () => {
            if (refused.intent !== undefined) this.session.client.dismiss(refused.intent);
            note(this.conv, undefined);
          },
          { class: "note banner-note" },
        ),
    );
  }

  /** The pinned messages, looked up among the shown `items` first (the whole timeline only
   * for one older than them); rebuilt only when one of them changed. */
  renderPins(conv, items) {
    if (conv.pins.length === 0) return remountIf(this.pins, "", () => mount(this.pins));
    const byId = new Map(items.map((i) => [i.message.id, i.message]));
    if (conv.pins.some((p) => !byId.has(p.message))) {
      for (const i of q.timeline(this.session.client, this.conv)) byId.set(i.message.id, i.message);
    }
    const pins = conv.pins.map((p) => {
      const m = byId.get(p.message);
      return [p.message, m ? `${displayName(m.author)}: ${(m.body || m.kind).slice(0, 40)}` : "an older message"];
    });
    remountIf(this.pins, pins.map(([id, label]) => `${id}\u0001${label}`).join("\n"), () =>
      mount(
        this.pins,
        h(
          "div",
          { class: "pins", id: this.inThread ? undefined : "pins" },
          "📌 ",
          pins.map(([id, label]) =>
            h(
              "button",
              {
                class: "link",
                onclick: () => document.querySelector(`.msg[data-id="${id}"]`)?.scrollIntoView({ block: "center" }),
              },
              label,
            ),
          ),
        ),
      ),
    );
  }

  /** `shared`: the members and lifecycle, serialized (part of the policy's signature). */
  renderTimeline(conv, items, shared) {
    const { client, account } = this.session;
    const el = this.timeline;
    const atBottom = !this.scrolled || this.atBottom;

    const outbox = q.outbox(client);
    const sends = new Map();
    const refusedAbout = new Map();
    for (const o of outbox) {
      if (o.intent.type === "send") sends.set(o.intent.message.id, o);
      else if (o.status.state === "rejected" && o.intent.conv === this.conv && ABOUT_MESSAGE.has(o.intent.type)) {
        const about = o.intent.message ?? o.intent.proposal;
        refusedAbout.set(about, [...(refusedAbout.get(about) ?? []), o]);
      }
    }
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
    // "Seen by": active members other than the author, at the newest message they read.
    const { active } = this.shapeOf(conv);
    const authorOf = new Map(items.map((i) => [i.message.id, i.message.author]));
    const seenBy = new Map();
    let lastSeenByOthers = -1;
    for (const [reader, message] of Object.entries(conv.reads)) {
      if (reader === account || !position.has(message) || !active.has(reader)) continue;
      lastSeenByOthers = Math.max(lastSeenByOthers, position.get(message));
      if (authorOf.get(message) === reader) continue;
      seenBy.set(message, [...(seenBy.get(message) ?? []), reader]);
    }
    // Delivered: the newest message another member's device holds (reading implies it).
    let lastDeliveredToOthers = lastSeenByOthers;
    for (const [holder, message] of Object.entries(conv.delivered ?? {})) {
      if (holder === account || !position.has(message) || !active.has(holder)) continue;
      lastDeliveredToOthers = Math.max(lastDeliveredToOthers, position.get(message));
    }
    // Views (groups and channels): the accounts whose read marker stands at or
    // after a post, as the server counts them (docs/SCHEMA.md, "Projection: stats and views").
    const counted = conv.kind === "group" || conv.kind === "channel";
    const marks = Object.values(conv.reads)
      .map((message) => position.get(message))
      .filter((p) => p !== undefined)
      .sort((a, b) => a - b);
    const viewsOf = (item) => {
      const at = position.get(item.message.id);
      let lo = 0;
      let hi = marks.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (marks[mid] < at) lo = mid + 1;
        else hi = mid;
      }
      return marks.length - lo;
    };
    const byId = new Map(items.map((i) => [i.message.id, i.message]));
    const threads = threadsByMessage(client);
    const pinned = new Set(conv.pins.map((p) => p.message));
    const ctx = {
      session: this.session,
      conv,
      byId,
      pinned,
      seenBy,
      threads,
      refusedAbout,
      sendOf: (item) => (item.pending ? sends.get(item.message.id) : undefined),
      seenAfter: (item) => position.get(item.message.id) <= lastSeenByOthers,
      deliveredAfter: (item) => position.get(item.message.id) <= lastDeliveredToOthers,
      viewsOf: (item) => (counted && !item.pending ? viewsOf(item) : null),
      showAuthor: true,
    };
    // What every message's look depends on besides itself: who may do what here. When it
    // changed, every message is built again.
    const policy = `${shared}\n${JSON.stringify([conv.settings, conv.kind])}`;
    const samePolicy = policy === this.policy;
    this.policy = policy;

    const wanted = [];
    // A node is kept when its item is the same object as last time (the client hands out a
    // new object only for an item that changed) and what it shows around it is the same:
    // `sig` is a primitive, an object compared by identity, or an array of those compared
    // element by element (serializing it per message and redraw was most of this function).
    const keep = (key, sig, build, item) => {
      const old = this.nodes.get(key);
      if (old && old.item === item && (item === undefined || samePolicy) && sameSig(old.sig, sig)) return wanted.push([key, old]);
      wanted.push([key, { sig, item, el: build() }]);
    };
    if (conv.thread) {
      // The parent's message object is the same one while it did not change.
      const parent = q.timeline(client, conv.thread.parent).find((i) => i.message.id === conv.thread.message)?.message;
      keep("parent", parent ?? null, () => this.parentMessage(conv.thread));
    }
    keep("older", "", () =>
      h(
        "div",
        { class: "day" },
        h("button", { class: "link", onclick: () => this.showOlder() }, "Load older messages"),
      ),
    );
    // Key-change notices (encrypted conversations): each right before the message the
    // client places it before, the same on every member's device; one whose message is not
    // shown is older than the window, and one without a message stands after them all.
    const notices = conv.encryption.enabled ? q.keyChanges(client, this.conv) : [];
    const noticesBefore = new Map();
    for (const n of notices) {
      if (n.before !== undefined && !position.has(n.before)) continue;
      const at = n.before ?? "";
      noticesBefore.set(at, [...(noticesBefore.get(at) ?? []), n]);
    }
    const keepNotices = (at) => {
      for (const n of noticesBefore.get(at) ?? []) {
        keep(`k:${n.epoch}:${n.kind}:${n.account}:${n.device}`, n.words, () => keyChangeView(n));
      }
    };
    let previous;
    let grew = false;
    for (const item of items) {
      const m = item.message;
      if (!previous || dayKey(previous.createdAt) !== dayKey(m.createdAt)) {
        const day = dayKey(m.createdAt);
        keep(`day:${day}`, day, () => h("div", { class: "day", role: "separator" }, h("span", {}, dayLabel(m.createdAt))));
        previous = undefined;
      }
      if (noticesBefore.has(m.id)) {
        keepNotices(m.id);
        previous = undefined;
      }
      ctx.showAuthor = !previous || previous.author !== m.author || m.createdAt - previous.createdAt > GROUP_MS;
      const quoted = m.replyTo ? byId.get(m.replyTo) : undefined;
      const refusals = refusedAbout.get(m.id);
      const live = liveOf(ctx, item);
      const menuOpen = ui.menu?.conv === this.conv && ui.menu?.message === m.id;
      // What the node is built from besides the message and `live`: primitives (and the note,
      // by identity); the rare objects (a refused send's status, the refusals about it: new
      // objects on every redraw) as JSON.
      const sig = [
        live.status === "rejected" ? JSON.stringify(ctx.sendOf(item)?.status ?? null) : null,
        ctx.showAuthor,
        pinned.has(m.id),
        threads.get(m.id) ?? null,
        refusals ? JSON.stringify(refusals.map((o) => [o.id, o.status])) : null,
        messageNotes.get(m.id) ?? null,
        menuOpen,
        quoted ? quoted.body : null,
        quoted ? (quoted.deletedAt ?? null) : null,
      ];
      const key = `m:${m.id}`;
      const old = this.nodes.get(key);
      // The same message: the same object, or (an item the client handed out anew because
      // its acceptance or seq changed) the same content; an open menu asks the policy again.
      const same =
        old &&
        samePolicy &&
        sameSig(old.sig, sig) &&
        (old.item === item || (!menuOpen && JSON.stringify(old.item.message) === JSON.stringify(m)));
      if (same) {
        if (!sameLive(old.live, live)) grew = patchLive(old.el, live) || grew;
        wanted.push([key, { sig, item, live, el: old.el }]);
      } else {
        // Built at once: a copy, as `showAuthor` changes for the next message.
        wanted.push([key, { sig, item, live, el: messageView({ ...ctx }, item, live) }]);
      }
      previous = m;
    }
    keepNotices("");
    for (const entry of rejected) {
      keep(`r:${entry.id}`, JSON.stringify(entry), () => rejectedView(this.session, entry));
    }
    if (items.length === 0 && rejected.length === 0) {
      keep("empty", "", () => h("p", { class: "placeholder" }, "No messages yet. Say hello!"));
    }
    // Scrolling reads the new height (a layout): only when the timeline changed.
    if ((this.patch(wanted) || grew) && atBottom) el.scrollTop = el.scrollHeight;
    if (items.length > 0) this.scrolled = true;
  }

  /** Puts `wanted` ([key, { el }] in order) into the timeline, touching only what moved;
   * says whether anything did. */
  patch(wanted) {
    this.nodes = new Map(wanted);
    return placeChildren(this.timeline, wanted.map(([, n]) => n.el));
  }

  parentMessage(link) {
    const parent = q.timeline(this.session.client, link.parent).find((i) => i.message.id === link.message)?.message;
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
    const wait = (this.lastMarkAt ?? -Infinity) + READ_EVERY_MS - Date.now();
    if (wait > 0) {
      // Marked a moment ago: once the interval is over, the redraw marks the newest then.
      this.markTimer ??= setTimeout(() => {
        this.markTimer = undefined;
        render();
      }, wait);
      return;
    }
    this.lastMarkAt = Date.now();
    this.lastMarked = id;
    client.markRead(this.conv, id).catch(() => {
      this.lastMarked = undefined;
    });
  }
}

/** A key-change notice in the timeline, in words ("bob added a device (…)"). */
function keyChangeView(n) {
  return h(
    "div",
    {
      class: "key-change",
      role: "note",
      dataset: { keyChange: n.kind, account: n.account, device: n.device, epoch: String(n.epoch) },
      title: "Keys of this conversation changed: compare safety numbers in the members panel",
    },
    h("span", {}, `🔑 ${n.words}`),
  );
}
