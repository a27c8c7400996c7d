// One message: author, reply quote, body (or a proposal card), edited / deleted, reactions,
// who has read up to it, its thread, my delivery status (queued, sending, sent, seen), and
// its actions — the ⋯ menu asks the policy about each and says why one is disabled.
import { guarded, h, refusalNote } from "../dom.js";
import { avatar, displayName, time } from "../format.js";
import { openPanel, refusalOf, render, ui } from "../state.js";
import { blobPath, objectUrl } from "../attach.js";
import { proposalCard, responseCard } from "./proposal.js";
import { forwardDialog } from "./dialogs.js";
import { openThread } from "./thread.js";

const EMOJIS = ["👍", "❤️", "😂", "🎉", "😮", "🙏"];

const STATUS = {
  pending: ["🕓", "Queued: waits for the network"],
  sent: ["…", "Sent, waiting for the server"],
  retrying: ["↻", "The server could not take it yet: it is sent again by itself"],
  accepted: ["✓", "Sent: the server has it"],
  delivered: ["✓✓", "Delivered to another member's device"],
  rejected: ["✕", "Refused by the server"],
  seen: ["✓✓", "Seen"],
};

/** Refusals of mine about one message that are not its own sending (a reaction, a pin, an
 * edit, a delete refused later by the server, or at once by the policy): message id → notes. */
export const messageNotes = new Map();

/**
 * ctx: { session, conv (Conversation), byId (Map of loaded messages), sendOf(item) (its outbox entry),
 *        seenBy (Map message → accounts), threads (Map message → thread conv), showAuthor,
 *        refusedAbout (Map message → refused outbox entries about it) }
 */
/** What changes about a message while it stays the same message — its delivery status
 * (pending, sent, accepted, delivered, seen; `rejected` is not live: it adds the reason),
 * its view count and who has seen it — patched into its node in place (`patchLive`) rather
 * than building the node again: a receipt moving over the recent messages once a second
 * would otherwise rebuild each of them (their text laid out and painted anew, a selection
 * in them lost). */
export function liveOf(ctx, item) {
  const m = item.message;
  const mine = m.author === ctx.session.account;
  let status = item.pending ? (ctx.sendOf(item)?.status.state ?? "pending") : "accepted";
  if (status === "accepted" && mine && ctx.seenAfter(item)) status = "seen";
  else if (status === "accepted" && mine && ctx.deliveredAfter(item)) status = "delivered";
  const seen = (ctx.seenBy.get(m.id) ?? []).map(displayName).join(", ");
  return { mine, status, views: ctx.viewsOf(item), seen };
}

/** Whether two `liveOf` answers show the same. */
export function sameLive(a, b) {
  return a.status === b.status && a.views === b.views && a.seen === b.seen;
}

/** Puts `live` into the node `messageView` built (its `mine` and `rejected` as they were).
 * Says whether a line came or went (the node's height may have changed). */
export function patchLive(el, live) {
  const { status, views, seen } = live;
  // Seen and delivered are receipts of an accepted message (`receipt` says which).
  el.dataset.status = status === "seen" || status === "delivered" ? "accepted" : status;
  el.dataset.receipt = status;
  el.classList.toggle("pending", status !== "accepted" && status !== "seen" && status !== "delivered");
  const meta = el.querySelector(":scope > .bubble > .meta");
  const mark = meta?.querySelector(":scope > .msg-status");
  if (mark) {
    mark.textContent = STATUS[status][0];
    mark.title = STATUS[status][1];
    mark.dataset.status = status;
  }
  let count = meta?.querySelector(":scope > .views");
  if (views === null) count?.remove();
  else {
    if (!count) meta?.querySelector(":scope > time")?.before((count = viewsView(views)));
    count.textContent = `👁 ${views}`;
    count.dataset.views = views;
  }
  const bubble = el.querySelector(":scope > .bubble");
  let line = bubble?.querySelector(":scope > .seen");
  const had = Boolean(line);
  if (!seen) line?.remove();
  else {
    if (!line) bubble?.insertBefore((line = h("div", { class: "seen" })), bubble.querySelector(":scope > .thread-link"));
    line.textContent = `Seen by ${seen}`;
  }
  return had !== Boolean(seen);
}

function viewsView(views) {
  return h("span", { class: "views", title: "Views", dataset: { views } }, `👁 ${views}`);
}

export function messageView(ctx, item, live = liveOf(ctx, item)) {
  const { session, conv } = ctx;
  const m = item.message;
  const { mine, status, views, seen } = live;
  const deleted = m.deletedAt !== undefined;
  const entry = ctx.sendOf(item);
  const rejected = status === "rejected";
  const classes = ["msg", mine && "mine", deleted && "deleted", item.pending && "pending", rejected && "rejected"];
  const thread = ctx.threads.get(m.id);
  const menuOpen = ui.menu?.conv === conv.id && ui.menu?.message === m.id;
  if (menuOpen) classes.push("menu-open");
  return h(
    "article",
    {
      class: classes.filter(Boolean).join(" "),
      dataset: {
        id: m.id,
        author: m.author,
        // Seen and delivered are receipts of an accepted message (`receipt` says which).
        status: status === "seen" || status === "delivered" ? "accepted" : status,
        receipt: status,
        kind: m.kind,
      },
    },
    !mine && (ctx.showAuthor ? avatar(m.author, 30) : h("span", { style: "width:30px;flex:none" })),
    h(
      "div",
      { class: "bubble" },
      !mine && ctx.showAuthor && h("div", { class: "author" }, m.senderName ?? displayName(m.author), m.senderRole && h("span", { class: "sender-role" }, ` · ${m.senderRole}`)),
      m.replyTo && quote(ctx, m.replyTo),
      m.forwardedFrom && h("div", { class: "forwarded" }, "↪ Forwarded"),
      item.undecryptable ? undecryptable(item) : body(ctx, m, deleted),
      reactions(ctx, m, deleted),
      h(
        "div",
        { class: "meta" },
        m.editedAt && !deleted && h("span", { class: "edited" }, "edited"),
        ctx.pinned.has(m.id) && h("span", { title: "Pinned" }, "📌"),
        views !== null && viewsView(views),
        h("time", { datetime: new Date(m.createdAt).toISOString() }, time(m.createdAt)),
        mine && h("span", { class: "msg-status", title: STATUS[status][1], dataset: { status } }, STATUS[status][0]),
      ),
      rejected && refusal(session, entry),
      (ctx.refusedAbout.get(m.id) ?? []).map((other) => refusal(session, other)),
      messageNotes.has(m.id) &&
        refusalNote(messageNotes.get(m.id), () => {
          messageNotes.delete(m.id);
          render();
        }),
      seen && h("div", { class: "seen" }, `Seen by ${seen}`),
      thread &&
        h(
          "div",
          { class: "thread-link" },
          h("button", { class: "link", onclick: () => openPanel({ kind: "thread", conv: thread }) }, "🧵 View thread"),
        ),
    ),
    !deleted && tools(ctx, item),
  );
}

function quote(ctx, id) {
  const target = ctx.byId.get(id);
  return h(
    "div",
    {
      class: "quote",
      onclick: () => {
        const el = document.querySelector(`.msg[data-id="${id}"]`);
        el?.scrollIntoView({ block: "center", behavior: "smooth" });
        el?.classList.add("flash");
        setTimeout(() => el?.classList.remove("flash"), 1200);
      },
    },
    target
      ? `↩ ${displayName(target.author)}: ${target.deletedAt ? "deleted message" : target.body.slice(0, 80) || target.kind}`
      : "↩ an older message",
  );
}

/** A sealed message this device cannot read: shown as such, with why, never dropped; one
 * still on its way says what it waits for. */
function undecryptable(item) {
  const reason = item.undecryptable;
  const text = item.unreadableForGood === false
    ? `⏳ Not readable yet: ${reason}`
    : `🔐 This message cannot be read on this device (${reason})`;
  return h(
    "div",
    { class: "msg-body undecryptable", title: reason, "data-unreadable": item.unreadable ?? "" },
    text,
  );
}

function body(ctx, m, deleted) {
  if (deleted) return h("div", { class: "msg-body" }, "This message was deleted");
  if (m.kind === "proposal") {
    return [m.body && h("div", { class: "msg-body" }, m.body), proposalCard(ctx.session, ctx.conv.id, m)];
  }
  if (m.kind === "proposal_response") return responseCard(m);
  return [m.body && h("div", { class: "msg-body" }, m.body), attachmentsView(ctx.session, m)];
}

/** Images as their thumbnail (a click opens the file), other files as a download link. */
function attachmentsView(session, m) {
  let list = [];
  try {
    list = m.attachments ? JSON.parse(m.attachments) : [];
  } catch {
    return undefined;
  }
  return list.map((a) => {
    const path = blobPath(a.url);
    const name = a.name ?? a.kind;
    if (!path) return h("a", { class: "attachment", href: a.url, target: "_blank", rel: "noopener" }, `📎 ${name}`);
    const open = () => objectUrl(session, path).then((url) => window.open(url, "_blank"), (e) => console.warn(e.message));
    if (a.kind === "image") {
      const img = h("img", { class: "attachment-preview", alt: name, onclick: open });
      objectUrl(session, `${path}/thumbnail`).then(
        (url) => (img.src = url),
        () => img.replaceWith(h("button", { class: "link attachment", onclick: open }, `🖼 ${name}`)),
      );
      return img;
    }
    return h("button", { class: "link attachment", onclick: open }, `📎 ${name}`);
  });
}

function reactions(ctx, m, deleted) {
  const entries = Object.entries(m.reactions ?? {}).filter(([, by]) => Object.keys(by).length > 0);
  if (deleted || entries.length === 0) return null;
  const { client, account } = ctx.session;
  return h(
    "div",
    { class: "reactions" },
    entries.map(([emoji, by]) => {
      const mineToo = account in by;
      return h(
        "button",
        {
          class: mineToo ? "mine" : "",
          title: Object.keys(by).map(displayName).join(", "),
          onclick: () => act(m.id, client.react(ctx.conv.id, m.id, emoji, !mineToo)),
        },
        `${emoji} ${Object.keys(by).length}`,
      );
    }),
  );
}

/** Runs an action on message `id`; a refusal at once becomes a note under the message. */
function act(id, promise) {
  return promise.catch((e) => {
    messageNotes.set(id, refusalOf(e));
    render();
  });
}

function tools(ctx, item) {
  const { conv, session } = ctx;
  const m = item.message;
  const open = ui.menu?.conv === conv.id && ui.menu?.message === m.id;
  return h(
    "div",
    { class: "tools" },
    h(
      "button",
      {
        title: "Reply",
        "aria-label": "Reply",
        dataset: { action: "reply" },
        onclick: () => {
          ui.editing.delete(conv.id);
          ui.replyTo.set(conv.id, m.id);
          render();
          document.querySelector(`.composer[data-conv="${conv.id}"] textarea`)?.focus();
        },
      },
      "↩",
    ),
    // A real button: click, tap, Enter and Space open it; the menu takes the focus.
    h(
      "button",
      {
        title: "More actions",
        "aria-label": "More actions",
        "aria-haspopup": "menu",
        dataset: { action: "menu" },
        "aria-expanded": open ? "true" : "false",
        onclick: (e) => {
          e.stopPropagation();
          if (open) return closeMenu(conv.id, m.id);
          ui.menu = { conv: conv.id, message: m.id, focus: true };
          render();
        },
      },
      "⋯",
    ),
    open && menu(ctx, session, item),
  );
}

/** Closes the open menu and gives the focus back to its ⋯ button. */
export function closeMenu(conv, message) {
  ui.menu = undefined;
  render();
  requestAnimationFrame(() =>
    requestAnimationFrame(() =>
      document.querySelector(`.main[data-conv="${conv}"] .msg[data-id="${message}"] button[data-action=menu]`)?.focus(),
    ),
  );
}

/** Arrow keys move between the menu's entries, Escape closes it, Tab leaves it closed. */
function menuKeys(e, conv, message) {
  const items = [...e.currentTarget.querySelectorAll("button:not(:disabled)")];
  const at = items.indexOf(document.activeElement);
  if (e.key === "Escape") {
    e.preventDefault();
    e.stopPropagation();
    closeMenu(conv, message);
  } else if (e.key === "ArrowDown" || e.key === "ArrowRight") {
    e.preventDefault();
    items[(at + 1) % items.length]?.focus();
  } else if (e.key === "ArrowUp" || e.key === "ArrowLeft") {
    e.preventDefault();
    items[(at - 1 + items.length) % items.length]?.focus();
  } else if (e.key === "Tab") {
    ui.menu = undefined;
    render();
  }
}

/** The action menu, built only while open: each entry asks the policy. */
function menu(ctx, session, timelineItem) {
  const { client, account } = session;
  const m = timelineItem.message;
  const conv = ctx.conv.id;
  // A push that redraws this message while its menu has the focus (a reaction accepted, a
  // conversation arriving) must not drop the focus: the same entry takes it again.
  const old = document.activeElement?.closest(".menu");
  const had = old ? [...old.querySelectorAll("button")].indexOf(document.activeElement) : -1;
  const ask = (action) => {
    try {
      return client.can({ action, conv, message: m.id });
    } catch (e) {
      return { allowed: false, code: e.code, reason: e.message };
    }
  };
  const close = () => closeMenu(conv, m.id);
  const react = ask("react");
  const pinned = ctx.pinned.has(m.id);
  const item = (label, verdict, onclick, action) =>
    guarded(
      [label, verdict.allowed ? null : h("span", { class: "why" }, verdict.reason)],
      verdict,
      () => {
        close();
        onclick();
      },
      { class: "item", role: "menuitem", dataset: { action } },
    );
  const el = h(
    "div",
    {
      class: "menu",
      role: "menu",
      "aria-label": "Message actions",
      onclick: (e) => e.stopPropagation(),
      onkeydown: (e) => menuKeys(e, conv, m.id),
    },
    h(
      "div",
      { class: "emojis" },
      EMOJIS.map((emoji) =>
        guarded(emoji, react, () => {
          close();
          const on = !(account in (m.reactions?.[emoji] ?? {}));
          act(m.id, client.react(conv, m.id, emoji, on));
        }),
      ),
    ),
    ctx.conv.kind !== "thread" &&
      item("🧵 Reply in thread", client.can({ action: "send", conv }), () => openThread(session, ctx.conv, m), "thread"),
    m.author === account &&
      m.kind === "text" &&
      item("✏️ Edit", ask("edit"), () => {
        ui.replyTo.delete(conv);
        ui.editing.set(conv, m.id);
        render();
      }, "edit"),
    item("🗑 Delete", ask("delete"), () => {
      if (confirm("Delete this message for everyone?")) act(m.id, client.delete(conv, m.id));
    }, "delete"),
    item(
      "↪ Forward",
      timelineItem.undecryptable
        ? { allowed: false, code: "undecryptable", reason: "This device cannot read it" }
        : { allowed: true },
      () => forwardDialog(session, ctx.conv, m),
      "forward",
    ),
    pinned
      ? item("📌 Unpin", ask("unpin"), () => act(m.id, client.unpin(conv, m.id)), "unpin")
      : item("📌 Pin", ask("pin"), () => act(m.id, client.pin(conv, m.id)), "pin"),
  );
  if (ui.menu?.focus) {
    // Opened by a click, a tap or a key: the first entry it allows takes the focus.
    ui.menu.focus = false;
    requestAnimationFrame(() => el.querySelector("button:not(:disabled)")?.focus());
  } else if (had >= 0) {
    // Once this redraw has mounted the new menu (before anything else runs).
    queueMicrotask(() => (el.querySelectorAll("button")[had] ?? el.querySelector("button:not(:disabled)"))?.focus());
  }
  return el;
}

/** Why the server refused something of mine about this message: the sentence for people,
 * the code and the technical detail in the title, and a way to put it away. */
function refusal(session, entry) {
  const { code, reason, detail } = entry.status;
  return refusalNote(
    { code, reason, detail },
    () => {
      session.client.dismiss(entry.id);
      render();
    },
    { class: "note msg-reason", dataset: { code, intent: entry.id } },
  );
}

/** A message of mine the server refused and the engine dropped from the timeline: it never
 * reached anyone; it stays here with the reason until dismissed. */
export function rejectedView(session, entry) {
  const m = entry.intent.message;
  return h(
    "article",
    { class: "msg mine rejected", dataset: { id: m.id, status: "rejected", intent: entry.id } },
    h(
      "div",
      { class: "bubble" },
      h("div", { class: "msg-body" }, m.body || m.kind),
      refusal(session, entry),
      h(
        "div",
        { class: "meta" },
        h("time", {}, time(m.createdAt)),
        h("span", { class: "msg-status", dataset: { status: "rejected" }, title: STATUS.rejected[1] }, STATUS.rejected[0]),
      ),
    ),
  );
}
