// The devices panel: this account's devices as the server's key directory lists them
// (docs/E2EE.md, "The account's devices") — each browser or private window signed in as the
// account is one, with its own keys. This one is marked; each shows when it registered, when
// it last connected and how many key packages it has left (others add it to encrypted
// conversations with one each). The client lists them on every connection; the panel asks
// again when it opens and on ↻ Refresh, and is redrawn when the `devices` event says a list
// came. Remove takes another device off the server's list (`removeDevice`); the client then
// takes it out of every encrypted conversation, so it reads nothing sent after.
import { h, mount, remountIf } from "../dom.js";
import { dateTime } from "../format.js";
import { openPanel, render, ui } from "../state.js";

/** Opens the panel (or closes it when open), asking the server for a fresh list. */
export function toggleDevices(session) {
  if (ui.panel?.kind === "devices") return openPanel(undefined);
  refresh(session);
  openPanel({ kind: "devices" });
}

/** Asks the server again; the `devices` event ends the wait (session.js). Offline the client
 * asks on its next connection. */
function refresh(session) {
  try {
    session.client.refreshDevices();
    ui.devicesAsked = ui.connection === "online";
  } catch (e) {
    ui.devicesAsked = false;
    ui.devicesError = { reason: e.message, code: e.code ?? "error" };
  }
  render();
}

export function renderDevices(el, session) {
  const { client } = session;
  const list = client.devices() ?? null;
  const state = [ui.devicesAsked === true, ui.connection, ui.devicesError ?? null];
  remountIf(el, JSON.stringify([list, state]), () => build(el, session, list));
}

function build(el, session, list) {
  const asking = ui.devicesAsked === true;
  const status = ui.devicesError
    ? h("div", { class: "denied", role: "alert", dataset: { code: ui.devicesError.code } }, ui.devicesError.reason)
    : ui.connection !== "online"
      ? h("div", { class: "why" }, "Offline: the list is asked again when this device connects.")
      : asking && h("div", { class: "why" }, "Asking the server…");
  mount(
    el,
    h(
      "header",
      {},
      h("h3", {}, list ? `Devices · ${list.length}` : "Devices"),
      h(
        "button",
        {
          dataset: { action: "refresh-devices" },
          title: "Ask the server for the list again",
          onclick: () => {
            ui.devicesError = undefined;
            refresh(session);
          },
        },
        "↻ Refresh",
      ),
      h("button", { onclick: () => openPanel(undefined), title: "Close" }, "✕"),
    ),
    h(
      "div",
      { class: "body", id: "devices" },
      h(
        "p",
        { class: "why" },
        "Every browser signed in as you is a device with its own keys. Encrypted conversations are read on the devices listed here; one you do not recognise was registered with your token.",
      ),
      status,
      list === null
        ? h("p", { class: "empty" }, "Not listed yet: the server lists them when this device connects.")
        : list.map((d) => row(session, d)),
    ),
  );
}

/** Removes another device; the `device_removed` event ends the wait (session.js). */
function remove(session, device) {
  ui.devicesError = undefined;
  try {
    session.client.removeDevice(device);
    ui.devicesAsked = true;
  } catch (e) {
    ui.devicesError = { reason: e.message, code: e.code ?? "error" };
  }
  render();
}

function row(session, d) {
  const packages = d.keyPackages;
  const left =
    packages === undefined
      ? "key packages: not known"
      : packages === 0
        ? "no key packages left (the last-resort one is used)"
        : `${packages} key package${packages === 1 ? "" : "s"} left`;
  const me = d.thisDevice;
  return h(
    "div",
    { class: `device${me ? " this" : ""}`, dataset: { device: d.device, this: String(me), keyPackages: packages } },
    h("span", { class: "device-icon", "aria-hidden": "true" }, "💻"),
    h(
      "div",
      { class: "device-main" },
      h(
        "div",
        { class: "name" },
        h("code", {}, d.device),
        " ",
        me && h("span", { class: "tag e2ee" }, "this device"),
      ),
      h("div", { class: "why", dataset: { field: "registered" } }, `Registered ${when(d.registeredAt)}`),
      h("div", { class: "why", dataset: { field: "last-seen" } }, `Last seen ${when(d.lastSeenAt)}`),
      h("div", { class: "why", dataset: { field: "key-packages" } }, left),
      h(
        "div",
        { class: "why fingerprint", title: `Signature key: ${d.signatureKey}` },
        `Key ${d.signatureKey.slice(0, 16).replace(/(.{4})(?=.)/g, "$1 ")}…`,
      ),
    ),
    !me &&
      h(
        "button",
        {
          dataset: { action: "remove-device" },
          title: "Take this device off your account: it reads nothing sent after",
          onclick: () => remove(session, d.device),
        },
        "Remove",
      ),
  );
}

function when(ms) {
  return ms === undefined ? "(not known)" : dateTime(ms);
}
