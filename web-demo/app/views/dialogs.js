// Modal forms: new group / channel / direct / support conversation, forwarding a message, a
// proposal, and "request change" with suggested slots.
import { h, toast } from "../dom.js";
import { convTitle, displayName } from "../format.js";
import { follow } from "../session.js";
import { select } from "../state.js";

const HOUR = 3_600_000;

/** A <dialog> around a form; `submit(form)` may throw to keep it open and show the error. */
function dialog(title, fields, submitLabel, submit) {
  const error = h("div", { class: "denied", role: "alert" });
  const form = h(
    "form",
    {},
    fields,
    error,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", onclick: () => box.close() }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, submitLabel),
    ),
  );
  const box = h("dialog", {}, h("h3", {}, title), form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await submit(form);
      box.close();
    } catch (err) {
      // The refusal, in words, in the dialog itself (its code for programs).
      error.textContent = err.message;
      error.dataset.code = err.code ?? "error";
    }
  });
  box.addEventListener("close", () => box.remove());
  document.body.append(box);
  box.showModal();
  return box;
}

function field(label, input) {
  return h("label", {}, label, input);
}

function others(session) {
  return session.users.filter((u) => u !== session.account);
}

/** datetime-local value for `ms` in this browser's time zone. */
function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function zone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function open(session, conv) {
  follow(session, conv);
  select(conv);
}

export function newConversationDialog(session, kind) {
  const { client } = session;
  const people = others(session);
  const checks = (role) =>
    h(
      "fieldset",
      {},
      h("legend", {}, role === "subscriber" ? "Subscribers" : "Members"),
      people.map((u) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "member", value: u }), displayName(u))),
    );
  const chosen = (form) => [...form.querySelectorAll("input[name=member]:checked")].map((i) => i.value);
  const title = h("input", { name: "title", required: true, placeholder: "Title", autofocus: true });

  if (kind === "group" || kind === "channel") {
    const role = kind === "channel" ? "subscriber" : "member";
    // Chosen at creation, never turned off; channels broadcast and are never encrypted.
    const encrypted = h("input", { type: "checkbox", name: "encrypted" });
    return dialog(
      kind === "group" ? "New group" : "New channel",
      [
        field("Title", title),
        checks(role),
        kind === "group" && h("label", { class: "check" }, encrypted, "🔐 End-to-end encrypted (the server cannot read it)"),
        kind === "channel" && h("p", { class: "why" }, "In a channel only admins post; subscribers read and react."),
      ],
      "Create",
      async (form) => {
        const input = { title: title.value.trim(), members: chosen(form).map((account) => ({ account, role })) };
        if (encrypted.checked) input.encrypted = true;
        const { conv } = kind === "group" ? await client.createGroup(input) : await client.createChannel(input);
        open(session, conv);
      },
    );
  }
  if (kind === "direct") {
    const peer = h("select", { name: "peer" }, people.map((u) => h("option", { value: u }, displayName(u))));
    // The pair's encrypted conversation is another one than their plain one (a conversation
    // never changes whether it is encrypted): both can exist side by side.
    const encrypted = h("input", { type: "checkbox", name: "encrypted" });
    return dialog(
      "New direct conversation",
      [
        field("With", peer),
        h("label", { class: "check" }, encrypted, "🔐 End-to-end encrypted (the server cannot read it)"),
        h("p", { class: "why" }, "Encrypted, it is a conversation of its own beside your plain one with this person."),
      ],
      "Open",
      async () => {
        const { conv } = await client.openDirect(peer.value, encrypted.checked ? { encrypted: true } : undefined);
        open(session, conv);
      },
    );
  }
  // Support: a thread between a resource's client and its owner, one per pair.
  const resource = h("input", { name: "resource", required: true, value: "flat-12", pattern: "[A-Za-z0-9_\\-]+" });
  const resourceTitle = h("input", { name: "resourceTitle", value: "Flat 12, Calle Luna", maxlength: 200 });
  const side = h(
    "select",
    { name: "side" },
    h("option", { value: "client" }, "I am the client (I ask about it)"),
    h("option", { value: "owner" }, "I am the owner (I answer)"),
  );
  const other = h("select", { name: "other" }, people.map((u) => h("option", { value: u }, displayName(u))));
  // The platform's title and names: applied where the thread has none yet, by whichever
  // side opens it first (docs/POLICY.md, "Support threads"); later openings change nothing.
  const why = h("div", { class: "why" }, "Title and names are applied if the thread has none yet.");
  return dialog(
    "New support thread",
    [
      field("Resource id", resource),
      field("My side", side),
      field("The other side", other),
      field("Resource title", resourceTitle),
      why,
    ],
    "Open",
    async () => {
      const me = session.account;
      const [clientAccount, owner] = side.value === "client" ? [me, other.value] : [other.value, me];
      const title = resourceTitle.value.trim();
      const { conv } = await client.openSupport({
        resource: resource.value.trim(),
        client: clientAccount,
        owner,
        title: title || undefined,
        clientName: displayName(clientAccount),
        ownerName: displayName(owner),
      });
      open(session, conv);
    },
  );
}

/** Forwards message `m` of conversation `from` into another conversation of mine. The client
 * refuses a forward out of an encrypted conversation into a plain one at once
 * (`forward_out_of_encrypted`, docs/E2EE.md, "Forwarding"); plain targets stay offered, so the
 * refusal is shown in words in the dialog, which stays open, like any refusal at once. */
export function forwardDialog(session, from, m) {
  const { client, account } = session;
  const targets = client
    .conversations()
    .filter((s) => s.conv !== from.id)
    .map((s) => client.conversation(s.conv))
    .filter((c) => c && c.lifecycle.state !== "deleted")
    .map((c) => ({ c, verdict: client.can({ action: "send", conv: c.id }) }));
  const label = (c) => `${convTitle(c, account)}${c.encryption.enabled ? " 🔐" : ""}`;
  const to = h(
    "select",
    { name: "to", required: true },
    // Where I may not post, the option says why (the policy's own words).
    targets.map(({ c, verdict }) =>
      h(
        "option",
        { value: c.id, disabled: !verdict.allowed, dataset: { encrypted: String(c.encryption.enabled) } },
        verdict.allowed ? label(c) : `${label(c)} — ${verdict.reason}`,
      ),
    ),
  );
  to.value = targets.find((t) => t.verdict.allowed)?.c.id ?? "";
  return dialog(
    "Forward",
    [
      h("p", { class: "why" }, `${displayName(m.author)}: “${(m.body || m.kind).slice(0, 80)}”`),
      field("To", to),
      from.encryption.enabled &&
        h("p", { class: "why" }, "🔐 From an encrypted conversation it goes only into an encrypted one."),
    ],
    "Forward",
    async () => {
      const target = targets.find((t) => t.c.id === to.value)?.c;
      await client.forward(from.id, m.id, to.value);
      toast(`Forwarded to ${target ? convTitle(target, account) : to.value}`);
    },
  );
}

/** Closes a support thread with its lead's outcome: won or lost, why,
 * and the lead it was about; moderators and above, as `Close` (the acceptor decides). */
export function closeLeadDialog(session, conv) {
  const { client } = session;
  const lifecycle = conv.lifecycle ?? {};
  const outcome = h(
    "select",
    { name: "outcome" },
    h("option", { value: "closed_won" }, "Won"),
    h("option", { value: "closed_lost" }, "Lost"),
  );
  const reason = h("input", { name: "reason", maxlength: 500, placeholder: "Why (optional)" });
  const lead = h("input", { name: "lead", maxlength: 200, placeholder: "Lead id (optional)", value: lifecycle.lead ?? "" });
  return dialog(
    "Close the lead",
    [field("Outcome", outcome), field("Reason", reason), field("Lead", lead)],
    "Close",
    async () => {
      const named = lead.value.trim();
      if (named && named !== lifecycle.lead) await client.setLead(conv.id, named);
      await client.closeLead(conv.id, outcome.value, reason.value.trim() || undefined);
    },
  );
}

/** My profile (the `profile` document: display name, avatar URL, bio, status); everyone
 * who follows it sees the change (names in timelines and lists come from profiles). */
export function profileDialog(session) {
  const { client, account } = session;
  const mine = client.profile(account) ?? { kind: "personal", displayName: displayName(account) };
  const name = h("input", { name: "displayName", required: true, maxlength: 120, value: mine.displayName ?? "" });
  const avatarUrl = h("input", { name: "avatar", type: "url", placeholder: "https://…", value: mine.avatar ?? "" });
  const bio = h("textarea", { name: "bio", maxlength: 160 }, mine.bio ?? "");
  const status = h("input", { name: "status", maxlength: 80, value: mine.status ?? "" });
  return dialog(
    "My profile",
    [field("Display name", name), field("Avatar URL", avatarUrl), field("Bio", bio), field("Status", status)],
    "Save",
    async () => {
      const text = (el) => el.value.trim() || undefined;
      await client.setProfile({
        kind: mine.kind ?? "personal",
        displayName: name.value.trim(),
        avatar: text(avatarUrl),
        bio: text(bio),
        status: text(status),
      });
    },
  );
}

export function proposeDialog(session, conv) {
  const tomorrow = new Date(Date.now() + 24 * HOUR);
  tomorrow.setHours(16, 0, 0, 0);
  const type = h(
    "select",
    { name: "type" },
    h("option", { value: "visit" }, "Visit"),
    h("option", { value: "booking_manual" }, "Manual booking"),
  );
  const start = h("input", { type: "datetime-local", name: "start", required: true, value: localInput(tomorrow.getTime()) });
  const end = h("input", { type: "datetime-local", name: "end", required: true, value: localInput(tomorrow.getTime() + HOUR / 2) });
  const meeting = h(
    "select",
    { name: "meeting" },
    h("option", { value: "on_site" }, "On site"),
    h("option", { value: "video_call" }, "Video call"),
  );
  const location = h("input", { name: "location", value: conv.info.title ?? conv.resource?.resource ?? "" });
  const expires = h("input", { type: "number", name: "expires", min: 1, value: 24 });
  const note = h("input", { name: "note", value: "Would this time work for you?" });
  return dialog(
    "Propose a time",
    [
      field("What", type),
      h("div", { class: "row" }, field("Starts", start), field("Ends", end)),
      h("div", { class: "why" }, `Time zone: ${zone()}`),
      field("How", meeting),
      field("Where (address or call link)", location),
      field("Answer within (hours)", expires),
      field("Message", note),
    ],
    "Send proposal",
    async () => {
      const timeStart = new Date(start.value).getTime();
      const timeEnd = new Date(end.value).getTime();
      if (!(timeEnd > timeStart)) throw new Error("The end must come after the start.");
      await session.client.propose(
        conv.id,
        {
          proposalType: type.value,
          timeStart,
          timeEnd,
          timezone: zone(),
          meetingType: type.value === "visit" ? meeting.value : undefined,
          location: location.value.trim() || undefined,
          fromResourceAddress: meeting.value === "on_site",
          expiresAt: Date.now() + Number(expires.value) * HOUR,
          createdByRole: conv.resource?.owner === session.account ? "owner" : "staff",
        },
        note.value,
      );
    },
  );
}

/** Suggestions are in the answerer's time zone (each slot names its zone). */
export function requestChangeDialog(session, convId, proposal) {
  const base = Date.now() + 48 * HOUR;
  const slot = (offset) => [
    h("input", { type: "datetime-local", value: localInput(base + offset), "aria-label": "Start" }),
    h("input", { type: "datetime-local", value: localInput(base + offset + HOUR / 2), "aria-label": "End" }),
  ];
  const slots = [slot(0), slot(24 * HOUR)];
  const comment = h("input", { name: "comment", value: "Could we move it?", required: true });
  return dialog(
    "Request another time",
    [
      field("Comment", comment),
      h("p", { class: "why" }, `Suggested slots (your time zone, ${zone()}); clear a slot to drop it.`),
      slots.map(([s, e], i) => h("div", { class: "row" }, field(`Slot ${i + 1} from`, s), field("to", e))),
    ],
    "Send request",
    async () => {
      const suggestedSlots = slots
        .filter(([s, e]) => s.value && e.value)
        .map(([s, e]) => ({ start: new Date(s.value).getTime(), end: new Date(e.value).getTime(), timezone: zone() }));
      await session.client.respond(convId, proposal.id, {
        response: "request_change",
        comment: comment.value.trim(),
        suggestedSlots,
        body: comment.value.trim(),
      });
    },
  );
}
