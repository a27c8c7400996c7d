// The client's queries that views redraw from, each asked once per redraw (state.js `once`):
// several views want the same answers, and each call converts its answer out of wasm.
import { once } from "./state.js";

export function conversations(client) {
  return once("conversations", () => client.conversations());
}

export function conversation(client, conv) {
  return once(`conversation:${conv}`, () => client.conversation(conv));
}

export function outbox(client) {
  return once("outbox", () => client.outbox());
}

/** `client.keyChanges(conv)`: an encrypted conversation's key-change notices. */
export function keyChanges(client, conv) {
  return once(`keyChanges:${conv}`, () => client.keyChanges(conv));
}

/** `client.timeline(conv)`, or only its newest `limit` items. */
export function timeline(client, conv, limit) {
  return once(`timeline:${limit ?? "all"}:${conv}`, () =>
    limit === undefined ? client.timeline(conv) : client.timeline(conv, { limit }),
  );
}
