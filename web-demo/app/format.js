// Display helpers: names, avatars, times, day separators, intent descriptions.
import { h } from "./dom.js";

const COLORS = ["#3b5bdb", "#c2255c", "#2b8a3e", "#e67700", "#7048e8", "#0c8599", "#5c940d", "#d9480f"];

/** Where names come from: the session sets it to the client's profiles. */
let profileOf = () => null;

export function useProfiles(lookup) {
  profileOf = lookup;
}

/** The account's profile name, or its id capitalized until its profile arrives. */
export function displayName(account) {
  const named = account ? profileOf(account)?.displayName : undefined;
  if (named) return named;
  return account ? account[0].toUpperCase() + account.slice(1) : "?";
}

export function avatar(account, size = 34) {
  let hash = 0;
  for (const c of account ?? "") hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return h(
    "span",
    {
      class: "avatar",
      style: `background:${COLORS[hash % COLORS.length]};width:${size}px;height:${size}px`,
      "aria-hidden": "true",
    },
    (account ?? "?").slice(0, 2).toUpperCase(),
  );
}

// One formatter for every message: `toLocaleTimeString` with options builds a new one per
// call, which was a tenth of a busy page's main thread (each redraw asks for every message).
const TIME = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });

export function time(ms) {
  return TIME.format(new Date(ms));
}

export function dateTime(ms, timeZone) {
  try {
    return new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short", timeZone });
  } catch {
    return new Date(ms).toLocaleString();
  }
}

export function timeIn(ms, timeZone) {
  try {
    return new Date(ms).toLocaleTimeString([], { timeStyle: "short", timeZone });
  } catch {
    return time(ms);
  }
}

/** A local calendar day key, for separators. */
export function dayKey(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ms) {
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (dayKey(ms) === dayKey(today)) return "Today";
  if (dayKey(ms) === dayKey(yesterday)) return "Yesterday";
  return new Date(ms).toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" });
}

/** "14:05" today, "Mon" this week, else a short date. */
export function shortWhen(ms) {
  if (!ms) return "";
  if (dayKey(ms) === dayKey(Date.now())) return time(ms);
  if (Date.now() - ms < 6 * 86_400_000) return new Date(ms).toLocaleDateString([], { weekday: "short" });
  return new Date(ms).toLocaleDateString([], { day: "numeric", month: "short" });
}

/** The title of a conversation as this account sees it. */
export function convTitle(conv, me) {
  if (!conv) return "…";
  if (conv.info?.title) return conv.info.title;
  if (conv.kind === "direct") {
    const peer = conv.members.find((m) => m.account !== me);
    return displayName(peer?.account);
  }
  if (conv.kind === "support" && conv.resource) return `Support · ${conv.resource.resource}`;
  return conv.id;
}

export const KIND_ICON = {
  direct: "👤",
  group: "👥",
  channel: "📣",
  thread: "🧵",
  support: "🏠",
  system: "⚙️",
};

const ROLE_RANK = ["subscriber", "readonly", "guest", "member", "moderator", "admin", "owner"];
export const ROLES = ["admin", "moderator", "member", "guest", "readonly", "subscriber"];

export function rank(role) {
  return ROLE_RANK.indexOf(role === "readonly" ? "subscriber" : role);
}

/** One role up / down the ladder (subscriber and readonly rank the same). */
export function nextRole(role, step) {
  const ladder = ["subscriber", "guest", "member", "moderator", "admin"];
  const at = ladder.indexOf(role === "readonly" ? "subscriber" : role);
  return at < 0 ? undefined : ladder[at + step];
}

/** What an outbox intent does, in a few words. */
export function describeIntent(intent, titleOf) {
  const where = intent.conv ? ` · ${titleOf(intent.conv)}` : "";
  switch (intent.type) {
    case "send": {
      const m = intent.message;
      const what = m.kind === "text" ? `“${m.body.slice(0, 40)}”` : m.kind.replace("_", " ");
      return `Send ${what}${where}`;
    }
    case "create_conversation":
      return `Create ${intent.kind} “${intent.title ?? intent.conv}”`;
    case "open_direct":
      return `Start a chat with ${displayName(intent.peer)}`;
    case "open_support":
      return `Open support for ${intent.resource}`;
    case "add_member":
      return `Add ${displayName(intent.account)} as ${intent.role}${where}`;
    case "remove_member":
      return `${intent.ban ? "Ban" : "Remove"} ${displayName(intent.account)}${where}`;
    case "set_role":
      return `Make ${displayName(intent.account)} ${intent.role}${where}`;
    case "set_lifecycle":
      return `Set ${intent.state}${where}`;
    case "answer_proposal":
      return `Answer proposal: ${intent.status.replace("_", " ")}${where}`;
    case "mark_read":
      return `Read up to here${where}`;
    case "set_conv_pref":
      return `Set ${intent.key} = ${intent.value}${where}`;
    default:
      return `${intent.type.replaceAll("_", " ")}${where}`;
  }
}
