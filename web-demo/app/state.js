// The page's own state (what is selected, what is open) and one render loop: anything that
// changes — a client event, a click — calls `render()`, and the views redraw from the client's
// queries at the next animation frame, once however many changes came in.

export const ui = {
  /** The signed-in session: { client, account, tenant, users, rest, ... } (session.js). */
  session: undefined,
  /** The conversation shown in the middle. */
  current: undefined,
  /** The side panel: undefined | { kind: "members" } | { kind: "settings" } | { kind: "thread", conv }
   * | { kind: "devices" } (the account's, shown with or without a conversation). */
  panel: undefined,
  /** Per conversation: the message being answered / edited in its composer. */
  replyTo: new Map(),
  editing: new Map(),
  /** A search result to show: { conv, message } (its conversation view scrolls to it). */
  jump: undefined,
  /** The message whose action menu is open: { conv, message }. */
  menu: undefined,
  /** Conversations this account lost access to: conv → reason (from `revoked` events). */
  revoked: new Map(),
  /** "online" | "connecting" | "offline". */
  connection: "offline",
  showArchived: false,
  /** On a phone the list and the conversation are two screens: "list" | "conv". */
  screen: "list",
  /** Refusals not tied to a message, one note per place: conv id → { reason, code, detail }. */
  notes: new Map(),
  /** The devices panel asked the server for the list and waits for the `devices` event. */
  devicesAsked: false,
  /** Why asking for the devices failed at once: { reason, code }. */
  devicesError: undefined,
};

const renderers = new Set();
let scheduled = false;

/** Registers a view's redraw; returns a function that removes it. */
export function onRender(fn) {
  renderers.add(fn);
  return () => renderers.delete(fn);
}

export function render() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    asked = new Map();
    try {
      for (const fn of [...renderers]) {
        try {
          fn();
        } catch (e) {
          console.error("render failed", e);
        }
      }
    } finally {
      asked = undefined;
    }
  });
}

/** Answers of client queries during the current redraw, by key (undefined outside one). */
let asked;

/** `query()`, asked once per redraw: the views that want the same answer (the list and the
 * open conversation both want the summaries, ...) cross into wasm once, which is what a
 * query costs. Outside a redraw (a click, an event) it is asked each time. The
 * answer is shared: treat it as read-only. */
export function once(key, query) {
  if (!asked) return query();
  if (!asked.has(key)) asked.set(key, query());
  return asked.get(key);
}

export function select(conv) {
  if (ui.current !== conv) ui.menu = undefined;
  ui.current = conv;
  ui.screen = "conv";
  if (ui.panel?.kind === "thread") ui.panel = undefined;
  const url = new URL(location.href);
  url.searchParams.set("conv", conv);
  history.replaceState(null, "", url);
  render();
}

export function openPanel(panel) {
  ui.panel = panel;
  render();
}

/** Back to the conversation list (the phone layout's back button). */
export function back() {
  ui.screen = "list";
  ui.menu = undefined;
  if (ui.panel) ui.panel = undefined;
  render();
}

/** A refusal shown in place of a toast: one note per conversation, the newest wins. */
export function note(conv, refusal) {
  if (refusal) ui.notes.set(conv, refusal);
  else ui.notes.delete(conv);
  render();
}

/** `{ reason, code, detail }` of a thrown ConfabError (or any error). */
export function refusalOf(error) {
  return { reason: error?.message ?? String(error), code: error?.code ?? "error", detail: error?.detail };
}
