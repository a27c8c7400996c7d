// The bell: this account's unread notifications (mentions, replies, direct messages,
// proposals, join requests; docs/NOTIFICATIONS.md) as a badge, and the feed in a dialog.
// The feed is the server's, read through the client (REST with its token), and it is not on
// the sync WebSocket; but everything that notifies this account is a change of a
// conversation the client follows (a message in it, a join request in its member list), so
// the badge is asked again when the client says one arrived (`timeline` and `conversation`
// events: a trailing read AFTER_EVENT_MS after the last of a burst, the server's notifier
// writes a few milliseconds after the commit), when the page starts, comes back to view or
// online, and after the dialog marks things read. An idle page asks once a minute
// (FALLBACK_MS) in case an event came before the notifier's write; a 3 s poll per open tab
// was the whole server's REST load at a thousand idle users.
import { h, mount } from "../dom.js";
import { displayName, shortWhen } from "../format.js";
import { follow } from "../session.js";
import { select, ui } from "../state.js";

const AFTER_EVENT_MS = 800;
const FALLBACK_MS = 60_000;

const SAYS = {
  mention: "mentioned you",
  reply: "replied to you",
  direct: "wrote to you",
  proposal: "sent a proposal",
  join_request: "asks to join",
  message: "wrote",
};

export function createBell(session) {
  const badge = h("span", { class: "badge", hidden: true });
  const button = h(
    "button",
    { id: "bell", dataset: { action: "notifications", unread: "0" }, title: "Notifications", "aria-label": "Notifications", onclick: () => open() },
    "🔔",
    badge,
  );

  function show(unread) {
    button.dataset.unread = String(unread);
    badge.hidden = unread === 0;
    badge.textContent = unread > 99 ? "99+" : String(unread);
    button.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
  }

  async function refresh() {
    if (document.hidden || ui.connection !== "online") return;
    try {
      show(await session.client.unreadNotifications());
    } catch {
      // Offline or the server is away: the badge keeps its last count.
    }
  }

  function open() {
    const list = h("ul", { class: "notification-list", "aria-live": "polite" });
    const error = h("div", { class: "denied", role: "alert" });
    const readAll = h("button", { type: "button", dataset: { action: "read-all" } }, "Mark all read");
    const box = h(
      "dialog",
      { class: "notifications" },
      h("h3", {}, "Notifications"),
      list,
      error,
      h("div", { class: "buttons" }, readAll, h("button", { type: "button", onclick: () => box.close() }, "Close")),
    );
    box.addEventListener("close", () => box.remove());
    document.body.append(box);
    box.showModal();

    async function load() {
      error.textContent = "";
      try {
        const page = await session.client.notifications({ limit: 20 });
        show(page.unread);
        if (page.notifications.length === 0) mount(list, h("li", { class: "empty" }, "Nothing yet."));
        else mount(list, page.notifications.map(row));
      } catch (e) {
        error.textContent = e.message;
        error.dataset.code = e.code ?? "error";
      }
    }

    function row(n) {
      return h(
        "li",
        {
          class: `notification${n.read ? "" : " unread"}`,
          dataset: { id: String(n.id), kind: n.kind, conv: n.conversation },
          onclick: () => {
            box.close();
            if (n.kind === "join_request") follow(session, n.conversation);
            select(n.conversation);
          },
        },
        h(
          "strong",
          {},
          `${displayName(n.from)} ${SAYS[n.kind] ?? n.kind}` +
            (n.count > 1 ? ` (${n.count} new messages)` : ""),
        ),
        n.preview && h("span", { class: "notification-preview" }, n.preview),
        h("span", { class: "why" }, shortWhen(Date.parse(n.createdAt))),
      );
    }

    readAll.addEventListener("click", async () => {
      readAll.disabled = true;
      try {
        show((await session.client.markNotificationsRead()).unread);
        await load();
      } catch (e) {
        error.textContent = e.message;
        error.dataset.code = e.code ?? "error";
      } finally {
        readAll.disabled = false;
      }
    });
    load();
  }

  // One read after a burst of arrivals, not one per message.
  let due;
  const soon = () => {
    clearTimeout(due);
    due = setTimeout(refresh, AFTER_EVENT_MS);
  };
  for (const event of ["timeline", "conversation"]) session.client.on(event, soon);
  session.client.on("connection", (e) => e.state === "online" && soon());
  document.addEventListener("visibilitychange", () => document.hidden || soon());
  refresh();
  setInterval(refresh, FALLBACK_MS);
  return button;
}
