// One signed-in account: its ConfabClient (IndexedDB store, WebSocket sync), the online /
// offline switch, and discovery of conversations others added it to.
import init, { ConfabClient } from "../pkg/confab_wasm.js";
import { demoToken, Rest } from "./api.js";
import { toast } from "./dom.js";
import { convTitle, describeIntent } from "./format.js";
import { render, ui } from "./state.js";

let wasm;
const DISCOVERY_MS = 3000;

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
  });
  const session = {
    client,
    account,
    tenant,
    users,
    rest: new Rest(account),
    opened: new Set(),
    timer: undefined,
  };
  ui.session = session;
  client.on("*", (event) => onEvent(session, event));
  await client.ready();

  // Follow every stored conversation (today's bucket live), so the list shows new messages.
  for (const summary of client.conversations()) openQuietly(session, summary.conv);
  session.timer = setInterval(() => discover(session), DISCOVERY_MS);
  if (isOfflineByChoice(session)) {
    ui.connection = "offline";
  } else {
    goOnline(session);
  }
  render();
  return session;
}

export async function stopSession(session) {
  clearInterval(session.timer);
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
    case "online":
      ui.connection = "online";
      discover(session);
      break;
    case "offline":
      ui.connection = isOfflineByChoice(session) || !event.willRetry ? "offline" : "connecting";
      break;
    case "reconnecting":
      if (!isOfflineByChoice(session)) ui.connection = "connecting";
      break;
    case "revoked":
      if (event.conv) ui.revoked.set(event.conv, event.reason);
      break;
    case "intent":
      if (event.status.state === "rejected") onRefused(session, event);
      break;
    case "error":
      console.warn("confab:", event.code, event.message);
      break;
  }
  render();
}

function onRefused(session, { id, status }) {
  const { client, account } = session;
  const item = client.outbox().find((o) => o.id === id);
  const titleOf = (conv) => convTitle(client.conversation(conv), account);
  const what = item ? describeIntent(item.intent, titleOf) : `Action ${id}`;
  toast(`${what} was refused: ${status.reason}`, "error");
  // A removal this device has not seen yet (the server no longer sends it this
  // conversation) shows first as a refusal: say so on the conversation.
  const conv = item?.intent.conv;
  if (conv && ["member_inactive", "not_member"].includes(status.code)) ui.revoked.set(conv, status.reason);
}

/** Opens the conversations the server lists for this account that this device does not
 * know yet: groups, channels and threads others created and added it to. */
async function discover(session) {
  const { client } = session;
  if (!client.online || session.discovering) return;
  session.discovering = true;
  try {
    const known = new Set(client.conversations().map((s) => s.conv));
    for (const id of await session.rest.conversationIds()) {
      if (!known.has(id)) openQuietly(session, id);
    }
  } catch (e) {
    console.warn("discovery:", e);
  } finally {
    session.discovering = false;
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
