// The signed-in page: sidebar | conversation | side panel (members or a thread).
import { h, mount } from "../dom.js";
import { onRender, openPanel, render, ui } from "../state.js";
import { ConversationView } from "./conversation.js";
import { renderMembers } from "./members.js";
import { createSidebar } from "./sidebar.js";

export function mountShell(root, session, onSignOut) {
  const sidebar = createSidebar(onSignOut);
  const center = h("div", { class: "center" });
  const side = h("aside", { class: "side", hidden: true });
  mount(root, h("div", { class: "shell" }, sidebar.root, center, side));
  let view;
  let threadView;

  // A click elsewhere closes an open message menu.
  document.addEventListener("click", () => {
    if (ui.menu) {
      ui.menu = undefined;
      render();
    }
  });

  onRender(() => {
    sidebar.update();
    if (!ui.current) {
      view = undefined;
      mount(center, h("div", { class: "placeholder" }, h("h2", {}, "Welcome"), h("p", {}, "Pick a conversation, or start one.")));
    } else {
      if (view?.conv !== ui.current) {
        view = new ConversationView(session, ui.current);
        mount(center, view.root);
      }
      view.update();
    }

    const panel = ui.panel;
    side.hidden = !panel || (panel.kind === "members" && !ui.current);
    if (panel?.kind === "members" && ui.current) {
      threadView = undefined;
      side.className = "side";
      renderMembers(side, session, ui.current);
    } else if (panel?.kind === "thread") {
      if (threadView?.conv !== panel.conv) {
        threadView = new ConversationView(session, panel.conv, { inThread: true, onClose: () => openPanel(undefined) });
        mount(side, threadView.root);
      }
      side.className = "side thread";
      threadView.update();
    } else {
      threadView = undefined;
    }
  });
  render();
}
