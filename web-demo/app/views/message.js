// One message: author, reply quote, body (or a proposal card), edited / deleted, reactions,
// who has read up to it, its thread, my delivery status (queued, sending, sent, seen), and
// its actions — the ⋯ menu asks the policy about each and says why one is disabled.
import { guarded, h, toast } from "../dom.js";
import { avatar, displayName, time } from "../format.js";
import { openPanel, render, ui } from "../state.js";
import { proposalCard, responseCard } from "./proposal.js";
import { openThread } from "./thread.js";

const EMOJIS = ["👍", "❤️", "😂", "🎉", "😮", "🙏"];

const STATUS = {
  pending: ["🕓", "Queued: waits for the network"],
  sent: ["…", "Sent, waiting for the server"],
  accepted: ["✓", "Delivered"],
  rejected: ["✕", "Refused by the server"],
  seen: ["✓✓", "Seen"],
};

/**
 * ctx: { session, conv (Conversation), byId (Map of loaded messages), sendOf(item) (its outbox entry),
 *        seenBy (Map message → accounts), threads (Map message → thread conv), showAuthor }
 */
export function messageView(ctx, item) {
  const { session, conv } = ctx;
  const { account: me } = session;
  const m = item.message;
  const mine = m.author === me;
  const deleted = m.deletedAt !== undefined;
  const seen = ctx.seenBy.get(m.id) ?? [];
  const entry = ctx.sendOf(item);
  let status = item.pending ? (entry?.status.state ?? "pending") : "accepted";
  if (status === "accepted" && mine && ctx.seenAfter(item)) status = "seen";
  const rejected = status === "rejected";
  const classes = ["msg", mine && "mine", deleted && "deleted", item.pending && "pending", rejected && "rejected"];
  const thread = ctx.threads.get(m.id);
  return h(
    "article",
    {
      class: classes.filter(Boolean).join(" "),
      dataset: { id: m.id, author: m.author, status: status === "seen" ? "accepted" : status, kind: m.kind },
    },
    !mine && (ctx.showAuthor ? avatar(m.author, 30) : h("span", { style: "width:30px;flex:none" })),
    h(
      "div",
      { class: "bubble" },
      !mine && ctx.showAuthor && h("div", { class: "author" }, displayName(m.author)),
      m.replyTo && quote(ctx, m.replyTo),
      body(ctx, m, deleted),
      reactions(ctx, m, deleted),
      h(
        "div",
        { class: "meta" },
        m.editedAt && !deleted && h("span", { class: "edited" }, "edited"),
        ctx.pinned.has(m.id) && h("span", { title: "Pinned" }, "📌"),
        h("time", { datetime: new Date(m.createdAt).toISOString() }, time(m.createdAt)),
        mine && h("span", { class: "msg-status", title: STATUS[status][1], dataset: { status } }, STATUS[status][0]),
      ),
      rejected && refusal(session, entry),
      seen.length > 0 && h("div", { class: "seen" }, `Seen by ${seen.map(displayName).join(", ")}`),
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

function body(ctx, m, deleted) {
  if (deleted) return h("div", { class: "msg-body" }, "This message was deleted");
  if (m.kind === "proposal") {
    return [m.body && h("div", { class: "msg-body" }, m.body), proposalCard(ctx.session, ctx.conv.id, m)];
  }
  if (m.kind === "proposal_response") return responseCard(m);
  return h("div", { class: "msg-body" }, m.body);
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
          onclick: () => act("React", client.react(ctx.conv.id, m.id, emoji, !mineToo)),
        },
        `${emoji} ${Object.keys(by).length}`,
      );
    }),
  );
}

function act(label, promise) {
  return promise.catch((e) => toast(`${label}: ${e.message}`, "error"));
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
    h(
      "button",
      {
        title: "More",
        dataset: { action: "menu" },
        "aria-expanded": open ? "true" : "false",
        onclick: (e) => {
          e.stopPropagation();
          ui.menu = open ? undefined : { conv: conv.id, message: m.id };
          render();
        },
      },
      "⋯",
    ),
    open && menu(ctx, session, m),
  );
}

/** The action menu, built only while open: each entry asks the policy. */
function menu(ctx, session, m) {
  const { client, account } = session;
  const conv = ctx.conv.id;
  const ask = (action) => {
    try {
      return client.can({ action, conv, message: m.id });
    } catch (e) {
      return { allowed: false, code: e.code, reason: e.message };
    }
  };
  const close = () => {
    ui.menu = undefined;
    render();
  };
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
      { class: "item", dataset: { action } },
    );
  return h(
    "div",
    { class: "menu", role: "menu", onclick: (e) => e.stopPropagation() },
    h(
      "div",
      { class: "emojis" },
      EMOJIS.map((emoji) =>
        guarded(emoji, react, () => {
          close();
          const on = !(account in (m.reactions?.[emoji] ?? {}));
          act("React", client.react(conv, m.id, emoji, on));
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
      if (confirm("Delete this message for everyone?")) act("Delete", client.delete(conv, m.id));
    }, "delete"),
    pinned
      ? item("📌 Unpin", ask("unpin"), () => act("Unpin", client.unpin(conv, m.id)), "unpin")
      : item("📌 Pin", ask("pin"), () => act("Pin", client.pin(conv, m.id)), "pin"),
  );
}

/** Why the server refused a message of mine, and a way to put it away. */
function refusal(session, entry) {
  return h(
    "div",
    { class: "msg-reason" },
    `Not delivered: ${entry.status.reason} (${entry.status.code}) `,
    h(
      "button",
      {
        class: "link",
        onclick: () => {
          session.client.dismiss(entry.id);
          render();
        },
      },
      "Dismiss",
    ),
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
