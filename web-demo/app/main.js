// Entry point: sign in as a demo user (remembered in the URL, so a reload stays signed in),
// then the chat.
import { demoUsers } from "./api.js";
import { h, mount } from "./dom.js";
import { displayName } from "./format.js";
import { startSession, stopSession } from "./session.js";
import { select, ui } from "./state.js";
import { mountShell } from "./views/shell.js";
import { renderSignin } from "./views/signin.js";

const root = document.getElementById("app");

async function boot() {
  let info;
  try {
    info = await demoUsers();
  } catch (e) {
    mount(root, h("p", { class: "boot" }, `Cannot reach the demo server: ${e.message}`));
    return;
  }
  const params = new URLSearchParams(location.search);
  const user = params.get("user");
  if (user && info.users.includes(user)) await signIn(info, user, params.get("conv"));
  else renderSignin(root, info, (picked) => signIn(info, picked));
}

async function signIn(info, user, conv) {
  const url = new URL(location.href);
  url.searchParams.set("user", user);
  history.replaceState(null, "", url);
  mount(root, h("p", { class: "boot" }, `Opening ${displayName(user)}'s conversations…`));
  try {
    const session = await startSession({ account: user, tenant: info.tenant, users: info.users });
    mountShell(root, session, signOut);
    if (conv) select(conv);
  } catch (e) {
    mount(root, h("p", { class: "boot" }, `Could not start: ${e.message} (${e.code ?? "error"})`));
  }
}

async function signOut() {
  if (ui.session) await stopSession(ui.session);
  location.href = location.pathname;
}

/** Keeps the app shell for offline reloads (sw.js); the data itself lives in IndexedDB. */
async function keepShellOffline() {
  if (!("serviceWorker" in navigator)) return;
  try {
    navigator.serviceWorker.addEventListener("message", (e) => {
      if (e.data?.type !== "shell") return;
      // Marks the page once the shell is kept (tests wait for it before cutting the network).
      if (e.data.kept) document.documentElement.dataset.offlineShell = "ready";
      else console.warn("no offline shell:", e.data.error);
    });
    await navigator.serviceWorker.register("sw.js");
    const registration = await navigator.serviceWorker.ready;
    registration.active?.postMessage({ type: "shell?" });
  } catch (e) {
    console.warn("no offline shell:", e);
  }
}

// For poking around from the console.
window.confabDemo = ui;
keepShellOffline();
boot();
