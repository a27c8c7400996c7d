// One signed-in account: its ConfabClient (IndexedDB store, WebSocket sync) and the online /
// offline switch. Conversations others add it to need no polling: the server tells the
// client, which follows them by itself and says so with a `membership` event.
import init, { ConfabClient } from "../pkg/confab_wasm.js";
import { demoToken } from "./api.js";
import { resumeFiles } from "./attach.js";
import { toast } from "./dom.js";
import { displayName, useProfiles } from "./format.js";
import { note, render, ui } from "./state.js";

let wasm;

function offlineKey(tenant, account) {
  return `confab-demo:offline:${tenant}/${account}`;
}

export async function startSession({ account, tenant, users }) {
  wasm ??= init();
  await wasm;
  const client = new ConfabClient({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    // Asked again on every (re)connection: the token may have expired, or the demo server
    // restarted with a new secret.
    tokenProvider: async () => (await demoToken(account)).token,
    storage: "indexeddb",
    tenant,
    account,
    // ?trace: `trace` events (cargo xtask bench browser reads them).
    trace: new URLSearchParams(location.search).has("trace"),
  });
  const session = {
    client,
    account,
    tenant,
    users,
    opened: new Set(),
  };
  ui.session = session;
  client.on("*", (event) => onEvent(session, event));
  await client.ready();
  followFocus(session);

  // Follow every stored conversation (today's bucket live), so the list shows new messages.
  for (const summary of client.conversations()) openQuietly(session, summary.conv);
  keepProfiles(session);
  if (isOfflineByChoice(session)) {
    ui.connection = "offline";
  } else {
    goOnline(session);
    resumeFiles(session).catch(() => {});
  }
  render();
  return session;
}

/** Away while the page has no focus or is hidden, online otherwise (the others see it). */
function followFocus(session) {
  session.focus = new AbortController();
  const say = (event) => {
    session.here = event?.type === "blur" ? false : !document.hidden && (event?.type === "focus" || document.hasFocus());
    session.client.setPresence(session.here ? "online" : "away");
    render();
  };
  const signal = session.focus.signal;
  window.addEventListener("focus", say, { signal });
  window.addEventListener("blur", say, { signal });
  document.addEventListener("visibilitychange", say, { signal });
  say();
}

export async function stopSession(session) {
  session.focus?.abort();
  await session.client.dispose();
  session.client.free();
  ui.session = undefined;
}

export function isOfflineByChoice(session) {
  return localStorage.getItem(offlineKey(session.tenant, session.account)) === "1";
}

/** The switch: offline means no connection at all (the choice survives a reload). */
export async function setOffline(session, offline) {
  const key = offlineKey(session.tenant, session.account);
  if (offline) {
    localStorage.setItem(key, "1");
    ui.connection = "offline";
    render();
    await session.client.disconnect();
  } else {
    localStorage.removeItem(key);
    goOnline(session);
  }
  render();
}

function goOnline(session) {
  ui.connection = "connecting";
  session.client.connect().catch((e) => {
    if (e.code !== "disconnected") toast(`Could not connect: ${e.message}`, "error");
  });
}

function onEvent(session, event) {
  switch (event.type) {
    case "membership":
      // Added: the client follows the conversation already (its list shows it); removed:
      // the conversation says why. Re-added: the note goes.
      if (event.following) {
        session.opened.add(event.conv);
        ui.revoked.delete(event.conv);
      } else if (event.status !== "active") {
        ui.revoked.set(event.conv, event.sentence);
      }
      break;
    case "connection":
      // The client's own view: offline within seconds of a lost network or server.
      ui.connection = isOfflineByChoice(session) ? "offline" : event.state;
      break;
    case "revoked":
      if (event.conv) ui.revoked.set(event.conv, event.reason);
      break;
    case "devices":
      // The list the devices panel asked for (or the one of a new connection) came.
      ui.devicesAsked = false;
      break;
    case "device_removed":
      // Removed: the list that follows redraws the panel; refused: the panel says why.
      if (event.refused) {
        ui.devicesAsked = false;
        ui.devicesError = { reason: `The server did not remove ${event.device} (${event.refused}).`, code: event.refused };
      }
      break;
    case "intent":
      if (event.status.state === "rejected") onRefused(session, event);
      break;
    case "error":
      // A refused list is one of these too: the devices panel stops saying it is asking.
      ui.devicesAsked = false;
      console.warn("confab:", event.code, event.message);
      break;
  }
  render();
}

/** Intents whose refusal shows under their message (the timeline finds them in the outbox). */
const SHOWN_UNDER_MESSAGE = new Set(["send", "react", "pin", "unpin", "edit", "delete", "answer_proposal"]);

/** A refusal is a note in place, never a toast: under its message, or on its conversation. */
function onRefused(session, { id, status }) {
  const { client } = session;
  const item = client.outbox().find((o) => o.id === id);
  const conv = item?.intent.conv;
  // A removal this device has not seen yet (the server no longer sends it this
  // conversation) shows first as a refusal: say so on the conversation.
  if (conv && ["member_inactive", "not_member"].includes(status.code)) ui.revoked.set(conv, status.reason);
  if (!conv || SHOWN_UNDER_MESSAGE.has(item.intent.type)) return;
  note(conv, { reason: status.reason, code: status.code, detail: status.detail, intent: id });
}

/** Demo users get a profile with a display name ("Carol"), and each page follows the others'
 * profiles: the client's sentences about refusals name people from profiles. */
function keepProfiles(session) {
  const { client, account, users } = session;
  useProfiles((who) => {
    try {
      return client.profile(who);
    } catch {
      return null;
    }
  });
  if (!client.profile(account)) {
    client.setProfile({ kind: "personal", displayName: displayName(account) }).catch((e) => console.warn("profile:", e.message));
  }
  for (const user of users) {
    if (user !== account) client.openProfile(user).catch((e) => console.warn(`profile of ${user}:`, e.message));
  }
}

function openQuietly(session, conv) {
  if (session.opened.has(conv)) return;
  session.opened.add(conv);
  session.client
    .openConversation(conv, { limit: 50 })
    .then(render)
    .catch((e) => {
      session.opened.delete(conv);
      console.warn(`opening ${conv}:`, e);
    });
}

/** Opens a conversation for reading (loads its newest messages) and selects it. */
export function follow(session, conv) {
  openQuietly(session, conv);
}
