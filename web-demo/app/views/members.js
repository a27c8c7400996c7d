// The members panel: everyone with their role and status; promote, demote and remove for each
// member, leave for me, approve or decline who asks to join, and add someone — every control
// asks the policy first (the same check the server runs) and, when it says no, is disabled
// with the reason next to it.
import { forget, guarded, h, mount, remountIf } from "../dom.js";
import { avatar, displayName, nextRole, rank, ROLES } from "../format.js";
import * as q from "../queries.js";
import { note, openPanel, refusalOf, render } from "../state.js";
import { presenceDot, presenceOf } from "./presence.js";

/** The add form's choice per conversation: the panel is redrawn on every change. */
const chosen = new Map();

export function renderMembers(el, session, convId) {
  const conv = q.conversation(session.client, convId);
  if (!conv) {
    forget(el);
    return mount(el);
  }
  const heard = presenceOf(session, convId);
  // Rebuilt only when the conversation or a presence changed: a message arriving keeps the
  // open <select>.
  const states = [...heard.values()].map((p) => [p.account, p.state]);
  // The key version moves with every commit of an encrypted group: safety numbers follow.
  const keys = conv.encryption.enabled ? conv.encryption.keyVersion : null;
  // And so do the verified marks, which this device alone sets.
  const marks = conv.encryption.enabled ? conv.members.map((m) => session.client.verification(m.account)) : null;
  remountIf(el, JSON.stringify([convId, conv.members, conv.settings, conv.lifecycle, conv.kind, states, keys, marks]), () =>
    build(el, session, convId, conv, heard),
  );
}

function build(el, session, convId, conv, heard) {
  const { client, account, users } = session;
  // A refusal at once is the conversation's note (one, the newest), not a toast.
  const act = (_label, promise) => promise.catch((e) => note(convId, refusalOf(e)));
  // Active members first, then who asks to join (waiting for an answer), then the rest.
  const order = (m) => (m.status === "active" ? 0 : m.status === "requested" ? 1 : 2);
  const members = [...conv.members].sort(
    (a, b) =>
      order(a) - order(b) ||
      rank(b.role) - rank(a.role) ||
      a.account.localeCompare(b.account),
  );
  const activeIds = new Set(members.filter((m) => m.status === "active").map((m) => m.account));
  const candidates = users.filter((u) => !activeIds.has(u));
  const defaultRole = conv.kind === "channel" ? "subscriber" : "member";

  const row = (m) => {
    const me = m.account === account;
    const up = nextRole(m.role, +1);
    const down = nextRole(m.role, -1);
    const verdict = (query) => client.can({ conv: convId, account: m.account, ...query });
    // Approving is adding (with the join role), declining is removing: the policy answers
    // them as such (docs/POLICY.md, "Joining").
    const answers = () => [
      guarded("Approve", verdict({ action: "add_member", role: defaultRole }), () =>
        act("Approve", client.approveJoin(convId, m.account)),
      { class: "primary", dataset: { action: "approve" } }),
      guarded("Decline", verdict({ action: "remove_member" }), () => act("Decline", client.declineJoin(convId, m.account)), {
        class: "danger",
        dataset: { action: "decline" },
      }),
    ];
    const controls =
      m.status === "requested"
        ? answers()
        : m.status !== "active"
        ? []
        : me
          ? [
              guarded("Leave", client.can({ action: "leave", conv: convId }), () => act("Leave", client.leave(convId)), {
                class: "danger",
                dataset: { action: "leave" },
              }),
            ]
          : [
              up &&
                guarded(`Promote to ${up}`, verdict({ action: "set_role", role: up }), () =>
                  act("Promote", client.setRole(convId, m.account, up)),
                { dataset: { action: "promote" } }),
              down &&
                guarded(`Demote to ${down}`, verdict({ action: "set_role", role: down }), () =>
                  act("Demote", client.setRole(convId, m.account, down)),
                { dataset: { action: "demote" } }),
              guarded("Remove", verdict({ action: "remove_member" }), () => act("Remove", client.removeMember(convId, m.account)), {
                class: "danger",
                dataset: { action: "remove" },
              }),
            ];
    const denied = controls.filter((b) => b?.disabled).map((b) => b.title);
    // In an encrypted conversation: the safety number both people compare out loud, from
    // the keys of both accounts' devices in its group as this device holds them.
    const digits = conv.encryption.enabled && !me && m.status === "active" ? client.safetyNumber(convId, m.account) : undefined;
    const safety =
      conv.encryption.enabled &&
      !me &&
      m.status === "active" &&
      h(
        "div",
        {
          class: "safety",
          dataset: { safety: m.account },
          title: "Compare with them: the same digits on both sides mean no other device reads along",
        },
        h("span", { class: "digits" }, digits ? `🔑 ${digits.match(/.{5}/g).join(" ")}` : "🔑 no device of theirs in the group yet"),
        digits && verifiedMark(client, m.account),
      );
    return h(
      "div",
      {
        // Who asks to join is not faded like a former member: it waits for an answer.
        class: `member${m.status === "active" ? "" : m.status === "requested" ? " requested" : " inactive"}`,
        dataset: { account: m.account, role: m.role, status: m.status },
      },
      avatar(m.account, 32),
      m.status === "active" && presenceDot(heard, m.account),
      h("span", { class: "name" }, displayName(m.account), me && h("span", { class: "muted" }, " (you)")),
      h("span", { class: "tag" }, m.role),
      m.status === "requested" && h("span", { class: "tag" }, "asks to join"),
      m.status !== "active" && m.status !== "requested" && h("span", { class: "tag closed" }, m.status),
      safety,
      controls.length > 0 &&
        h(
          "div",
          { class: "controls" },
          controls,
          // Say why right here, not only in a tooltip: distinct reasons, once each.
          [...new Set(denied)].map((why) => h("div", { class: "why", style: "width:100%" }, why)),
        ),
    );
  };

  const pick = h(
    "select",
    { "aria-label": "Who", id: "add-member-account", onchange: () => remember() },
    candidates.map((u) => h("option", { value: u }, displayName(u))),
  );
  const role = h(
    "select",
    { "aria-label": "Role", id: "add-member-role", onchange: () => remember() },
    ROLES.map((r) => h("option", { value: r, selected: r === defaultRole }, r)),
  );
  const why = h("div", { class: "why", style: "width:100%" });
  const add = h("button", { class: "primary", dataset: { action: "add" } }, "Add");
  add.onclick = () =>
    act("Add", client.addMember(convId, pick.value, role.value)).then(() => render());
  const previous = chosen.get(convId);
  if (previous && candidates.includes(previous.account)) pick.value = previous.account;
  if (previous) role.value = previous.role;
  function remember() {
    chosen.set(convId, { account: pick.value, role: role.value });
    check();
  }
  function check() {
    if (!pick.value) {
      add.disabled = true;
      why.textContent = "Every demo user is already a member.";
      return;
    }
    const verdict = client.can({ action: "add_member", conv: convId, account: pick.value, role: role.value });
    add.disabled = !verdict.allowed;
    add.title = verdict.allowed ? "" : `${verdict.detail ?? ""} (${verdict.code})`;
    add.dataset.code = verdict.allowed ? "" : verdict.code;
    why.textContent = verdict.allowed ? "" : verdict.reason;
  }
  check();

  mount(
    el,
    h(
      "header",
      {},
      h("h3", {}, `Members · ${activeIds.size}`),
      h("button", { onclick: () => openPanel(undefined), title: "Close" }, "✕"),
    ),
    h(
      "div",
      { class: "body", id: "members" },
      h("div", { class: "add-member" }, candidates.length > 0 ? [pick, role, add] : null, why),
      members.map(row),
    ),
  );
}

/** The contact's verified mark on this device: mark it after comparing the digits; a device of
 * theirs added, removed or re-keyed since turns it to "changed" until marked again. */
function verifiedMark(client, peer) {
  const state = client.verification(peer);
  const mark = () => {
    client.markVerified(peer);
    render();
  };
  if (state === "verified") {
    return h("span", { class: "tag", dataset: { verification: state } }, "✔ verified");
  }
  return h(
    "button",
    { class: state === "changed" ? "danger" : "", dataset: { verification: state }, onclick: mark },
    state === "changed" ? "Their devices changed: compare, then mark verified" : "Mark verified",
  );
}
