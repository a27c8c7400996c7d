// Presence dots: online (green), away (amber), offline or never heard (grey), with the last
// time the member was heard in the tooltip (docs/PROTOCOL.md, Presence). Mine is the page's
// focus: the session tells the client "away" on blur and "online" on focus.
import { h } from "../dom.js";
import { shortWhen } from "../format.js";

/** account → { state, lastSeen } for the members of `convId` this device has heard from. */
export function presenceOf(session, convId) {
  const heard = new Map(session.client.presence(convId).map((p) => [p.account, p]));
  const mine = session.client.online ? (session.here ? "online" : "away") : "offline";
  heard.set(session.account, { account: session.account, state: mine, lastSeen: Date.now() });
  return heard;
}

/** A member's state: "online" | "away" | "offline". */
export function stateOf(heard, account) {
  return heard.get(account)?.state ?? "offline";
}

export function presenceDot(heard, account) {
  const p = heard.get(account);
  const state = p?.state ?? "offline";
  const title = p ? `${state} · last seen ${shortWhen(p.lastSeen)}` : "offline";
  return h("span", { class: `dot ${state}`, title, dataset: { presence: state } });
}
