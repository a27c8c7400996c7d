// The signed-in page: sidebar | conversation | side panel (members, settings, a thread, or
// the account's devices).
import { forget, h, mount, put, remountIf } from "../dom.js";
import { onRender, openPanel, render, ui } from "../state.js";
import { ConversationView } from "./conversation.js";
import { closeMenu } from "./message.js";
import { renderDevices } from "./devices.js";
import { renderMembers } from "./members.js";
import { renderSettings } from "./settings.js";
import { createSidebar } from "./sidebar.js";

/** The side panels drawn by a function (the thread panel is a conversation view). */
const PANELS = { members: renderMembers, settings: renderSettings, devices: renderDevices };

export function mountShell(root, session, onSignOut) {
  const sidebar = createSidebar(onSignOut);
  const center = h("div", { class: "center" });
  const side = h("aside", { class: "side", hidden: true });
  const shell = h("div", { class: "shell" }, sidebar.root, center, side);
  mount(root, shell);
  let view;
  let threadView;

  // A click (or tap) elsewhere closes an open message menu; so does Escape anywhere.
  document.addEventListener("click", () => {
    if (ui.menu) {
      ui.menu = undefined;
      render();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && ui.menu) closeMenu(ui.menu.conv, ui.menu.message);
  });

  onRender(() => {
    // On a phone one screen shows at a time: the list, or the conversation (CSS decides).
    // Attributes are written only when they change (a write is style work on every redraw).
    put(shell.dataset, "screen", ui.current ? ui.screen : "list");
    sidebar.update();
    if (!ui.current) {
      view?.dispose();
      view = undefined;
      remountIf(center, "welcome", () =>
        mount(center, h("div", { class: "placeholder" }, h("h2", {}, "Welcome"), h("p", {}, "Pick a conversation, or start one."))),
      );
    } else {
      if (view?.conv !== ui.current) {
        view?.dispose();
        view = new ConversationView(session, ui.current);
        forget(center); // the welcome draws here again from scratch
        mount(center, view.root);
      }
      view.update();
    }

    const panel = ui.panel;
    const perConversation = panel?.kind === "members" || panel?.kind === "settings";
    // The devices are the account's: their panel shows with or without a conversation.
    const drawn = perConversation ? ui.current && PANELS[panel.kind] : PANELS[panel?.kind];
    put(side, "hidden", !panel || (perConversation && !ui.current));
    if (drawn) {
      threadView?.dispose();
      threadView = undefined;
      put(side, "className", "side");
      if (side.dataset.panel !== panel.kind) forget(side); // the other panel drew here
      put(side.dataset, "panel", panel.kind);
      drawn(side, session, ui.current);
    } else if (panel?.kind === "thread") {
      if (threadView?.conv !== panel.conv) {
        threadView?.dispose();
        threadView = new ConversationView(session, panel.conv, { inThread: true, onClose: () => openPanel(undefined) });
        forget(side); // the members panel draws here again from scratch
        side.dataset.panel = "thread";
        mount(side, threadView.root);
      }
      put(side, "className", "side thread");
      threadView.update();
    } else {
      threadView?.dispose();
      threadView = undefined;
    }
  });
  render();
}
