// "Browse channels": the groups and channels of the organization this account may find
// (their scope, docs/POLICY.md "Joining"), with their member counts, a title search, and
// Join (where anyone may join), Ask to join (where an admin approves) or Open (a member).
// The list is the server's (`GET /v1/conversations/discover`), asked when the dialog opens,
// on a search and on "More"; nothing is polled.
import { discover, joinOrAsk } from "../api.js";
import { h, mount } from "../dom.js";
import { KIND_ICON } from "../format.js";
import { follow } from "../session.js";
import { select } from "../state.js";

const SEARCH_DELAY_MS = 250;

export function browseDialog(session) {
  const search = h("input", { type: "search", name: "q", placeholder: "Search titles", "aria-label": "Search titles" });
  const list = h("ul", { class: "browse-list", id: "browse-list", "aria-live": "polite" });
  const more = h("button", { type: "button", class: "link", dataset: { action: "more" }, hidden: true }, "More");
  const error = h("div", { class: "denied", role: "alert" });
  const box = h(
    "dialog",
    { class: "browse" },
    h("h3", {}, "Browse channels"),
    search,
    list,
    more,
    error,
    h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => box.close() }, "Close")),
  );
  box.addEventListener("close", () => box.remove());
  document.body.append(box);
  box.showModal();

  // Only the newest request's answer is shown (a slow answer to an older search is dropped).
  let asked = 0;
  let cursor;
  async function load(append) {
    const mine = ++asked;
    error.textContent = "";
    try {
      const page = await discover(session, { q: search.value, cursor: append ? cursor : undefined });
      if (mine !== asked) return;
      cursor = page.next_cursor ?? undefined;
      more.hidden = !cursor;
      const rows = page.conversations.map((c) => row(c));
      if (append) list.append(...rows);
      else if (rows.length === 0) mount(list, h("li", { class: "empty" }, search.value.trim() ? "Nothing matches." : "Nothing to find yet."));
      else mount(list, rows);
    } catch (e) {
      if (mine !== asked) return;
      error.textContent = e.message;
      error.dataset.code = e.code ?? "error";
    }
  }

  function row(c) {
    const count = h("span", { class: "count" }, members(c.member_count));
    const action = h("button", { type: "button", class: "primary" });
    const show = (entry) => {
      const { label, disabled, act } = actionOf(entry);
      action.textContent = label;
      action.disabled = disabled;
      action.dataset.action = act;
      count.textContent = members(entry.member_count);
    };
    show(c);
    action.addEventListener("click", async () => {
      if (action.dataset.action === "open") return open(c.id);
      action.disabled = true;
      error.textContent = "";
      try {
        await joinOrAsk(session, c.id, c.join);
        if (c.join === "open") return open(c.id);
        show({ ...c, membership_status: "requested" });
      } catch (e) {
        error.textContent = e.message;
        error.dataset.code = e.code ?? "error";
        action.disabled = false;
      }
    });
    return h(
      "li",
      { class: "browse-item", dataset: { conv: c.id, kind: c.type, scope: c.scope } },
      h("span", { class: "avatar", style: "background:#eef0f3;font-size:17px" }, KIND_ICON[c.type] ?? "💬"),
      h(
        "div",
        { class: "browse-main" },
        h("strong", { class: "browse-title" }, c.title || c.id),
        c.description && h("span", { class: "why" }, c.description),
        count,
      ),
      action,
    );
  }

  function open(conv) {
    box.close();
    follow(session, conv);
    select(conv);
  }

  let timer;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => load(false), SEARCH_DELAY_MS);
  });
  more.addEventListener("click", () => load(true));
  load(false);
  return box;
}

function members(n) {
  return `${n} ${n === 1 ? "member" : "members"}`;
}

/** What the row's button does for this account. */
function actionOf(c) {
  if (c.is_member) return { label: "Open", disabled: false, act: "open" };
  if (c.membership_status === "requested") return { label: "Requested", disabled: true, act: "requested" };
  // Anyone else (one who left, was removed, ...) may try: the policy answers, shown in place.
  if (c.join === "open") return { label: "Join", disabled: false, act: "join" };
  if (c.join === "request") return { label: "Ask to join", disabled: false, act: "ask" };
  return { label: "Invite only", disabled: true, act: "invite" };
}
