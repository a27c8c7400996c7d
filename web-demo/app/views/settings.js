// The settings panel: a conversation's title and description, and its settings (who sends,
// how people join and whether an admin approves them, who finds it in Browse, who adds members, reactions,
// attachments, slow mode, retention). Each control asks the policy first and, when it says
// no, is disabled with the reason under the panel's header; a change is one intent, written
// at once (offline too) and refused in place like any other.
import { forget, h, mount, remountIf } from "../dom.js";
import * as q from "../queries.js";
import { note, openPanel, refusalOf } from "../state.js";

/** Settings the panel edits: [schema key, view key, label, kind, choices]. */
const FIELDS = [
  ["send_policy", "sendPolicy", "Who may post", "choice", ["all_members", "admins_only"]],
  ["join_policy", "joinPolicy", "How people join", "choice", ["invite_only", "open", "link_join"]],
  ["join_approval_required", "joinApprovalRequired", "An admin approves who asks to join", "flag"],
  ["scope", "scope", "Who finds it in Browse", "choice", ["private", "organization", "public"]],
  ["add_members_policy", "addMembersPolicy", "Who may add members", "choice", ["all_members", "admins_only"]],
  ["info_edit_policy", "infoEditPolicy", "Who may edit the title", "choice", ["all_members", "admins_only"]],
  ["allow_reactions", "allowReactions", "Reactions", "flag"],
  ["allow_attachments", "allowAttachments", "Attachments", "flag"],
  ["slow_mode_seconds", "slowModeSeconds", "Slow mode (seconds between posts)", "number"],
  ["retention_days", "retentionDays", "Keep messages for (days)", "number"],
];

const LABELS = {
  all_members: "all members",
  admins_only: "admins only",
  invite_only: "by invitation",
  open: "anyone in the organization",
  link_join: "with an invite link",
  private: "nobody (private)",
  organization: "the organization's people",
  public: "people and service accounts",
};

export function renderSettings(el, session, convId) {
  const conv = q.conversation(session.client, convId);
  if (!conv) {
    forget(el);
    return mount(el);
  }
  // Rebuilt only when what it shows changed: typing in a field survives a message arriving,
  // and what is typed survives a rebuild (a marker, a member or a setting changing meanwhile).
  const typed = typedInfo(el);
  remountIf(el, JSON.stringify([convId, conv.info, conv.settings, conv.members, conv.lifecycle]), () => {
    build(el, session, convId, conv);
    restoreTyped(el, typed);
  });
}

/** The title and description fields whose text differs from what was drawn, with the focus
 * and selection of the one being typed in. */
function typedInfo(el) {
  return [...el.querySelectorAll("[data-info]")]
    .filter((input) => input.value !== input.dataset.shown)
    .map((input) => ({
      field: input.dataset.info,
      value: input.value,
      focused: document.activeElement === input,
      start: input.selectionStart,
      end: input.selectionEnd,
    }));
}

function restoreTyped(el, typed) {
  for (const t of typed) {
    const input = el.querySelector(`[data-info="${t.field}"]`);
    if (!input || input.disabled) continue;
    input.value = t.value;
    if (t.focused) {
      input.focus();
      input.setSelectionRange(t.start, t.end);
    }
  }
}

function build(el, session, convId, conv) {
  const { client } = session;
  const act = (promise) => promise.catch((e) => note(convId, refusalOf(e)));
  const reasons = new Set();
  const verdictFor = (query) => {
    const verdict = client.can({ conv: convId, ...query });
    if (!verdict.allowed) reasons.add(verdict.reason);
    return verdict;
  };

  const infoRow = (field, label, multiline) => {
    const verdict = verdictFor({ action: "set_info", field });
    const shown = conv.info?.[field] ?? "";
    const input = h(multiline ? "textarea" : "input", {
      id: `info-${field}`,
      "aria-label": label,
      value: shown,
      dataset: { info: field, shown },
      disabled: !verdict.allowed,
    });
    const save = h(
      "button",
      {
        disabled: !verdict.allowed,
        dataset: { action: `save-${field}` },
        onclick: () => {
          const value = input.value.trim();
          act(client.setInfo(convId, field, value === "" ? null : value));
        },
      },
      "Save",
    );
    return h("label", { class: "setting" }, h("span", {}, label), h("div", { class: "row" }, input, save));
  };

  const settingRow = ([key, viewKey, label, kind, choices]) => {
    const verdict = verdictFor({ action: "set_setting", key });
    const current = conv.settings[viewKey];
    const disabled = !verdict.allowed;
    let control;
    if (kind === "choice") {
      control = h(
        "select",
        {
          id: `setting-${key}`,
          "aria-label": label,
          disabled,
          onchange: () => act(client.setSetting(convId, key, control.value)),
        },
        choices.map((c) => h("option", { value: c, selected: c === current }, LABELS[c] ?? c)),
      );
    } else if (kind === "flag") {
      control = h("input", {
        type: "checkbox",
        id: `setting-${key}`,
        "aria-label": label,
        checked: !!current,
        disabled,
        onchange: () => act(client.setSetting(convId, key, control.checked)),
      });
    } else {
      control = h("input", {
        type: "number",
        min: "0",
        id: `setting-${key}`,
        "aria-label": label,
        value: current ?? "",
        placeholder: "forever",
        disabled,
        onchange: () => {
          const n = Number.parseInt(control.value, 10);
          if (Number.isInteger(n) && n >= 0) act(client.setSetting(convId, key, n));
        },
      });
    }
    return h("label", { class: "setting" }, h("span", {}, label), control);
  };

  const rows = [
    infoRow("title", "Title", false),
    infoRow("description", "Description", true),
    conv.kind !== "direct" && FIELDS.map(settingRow),
  ];
  mount(
    el,
    h(
      "header",
      {},
      h("h3", {}, "Settings"),
      h("button", { onclick: () => openPanel(undefined), title: "Close" }, "✕"),
    ),
    h(
      "div",
      { class: "body", id: "settings" },
      // Why a control is off, once per distinct reason.
      [...reasons].map((why) => h("div", { class: "why" }, why)),
      rows,
    ),
  );
}
