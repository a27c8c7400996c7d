// Actionable messages: a proposal card (visit or manual booking, its time in its
// time zone, where, until when) with Accept / Reject / Request change for the counterparty —
// each disabled with the policy's reason otherwise (not the counterparty, expired, already
// answered) — and the compact card of a proposal_response.
import { guarded, h } from "../dom.js";
import { dateTime, displayName, timeIn } from "../format.js";
import { note, refusalOf } from "../state.js";
import { requestChangeDialog } from "./dialogs.js";

const STATUS_LABEL = {
  pending: "Pending",
  accepted: "Accepted",
  rejected: "Rejected",
  reschedule_requested: "Change requested",
};

function parse(json) {
  try {
    return JSON.parse(json ?? "{}");
  } catch {
    return {};
  }
}

export function proposalCard(session, convId, message) {
  const { client } = session;
  const p = parse(message.payload);
  const status = message.status ?? p.status ?? "pending";
  const zone = p.timezone;
  const start = Date.parse(p.timeStart);
  const end = Date.parse(p.timeEnd);
  const expires = p.expiresAt ? Date.parse(p.expiresAt) : undefined;
  const verdict = (response) => {
    try {
      return client.can({ action: "respond", conv: convId, message: message.id, response });
    } catch (e) {
      return { allowed: false, code: e.code, reason: e.message };
    }
  };
  const answer = (response) =>
    client
      .respond(convId, message.id, { response, body: STATUS_LABEL[response === "accept" ? "accepted" : "rejected"] })
      .catch((e) => note(convId, refusalOf(e)));
  return h(
    "div",
    { class: "proposal", dataset: { status } },
    h(
      "h4",
      {},
      p.proposalType === "visit" ? "📅 Visit proposal" : "📝 Booking proposal",
      h("span", { class: `status ${status}`, dataset: { proposalStatus: status } }, STATUS_LABEL[status] ?? status),
    ),
    h(
      "dl",
      {},
      h("dt", {}, "When"),
      h("dd", {}, `${dateTime(start, zone)} – ${timeIn(end, zone)}`),
      h("dt", {}, "Time zone"),
      h("dd", {}, zone ?? "—"),
      p.meetingType && [h("dt", {}, "How"), h("dd", {}, p.meetingType === "on_site" ? "On site" : "Video call")],
      p.location && [h("dt", {}, "Where"), h("dd", {}, p.location)],
      expires && [h("dt", {}, "Answer by"), h("dd", {}, dateTime(expires, zone))],
      h("dt", {}, "From"),
      h("dd", {}, `${displayName(message.author)} (${p.createdByRole ?? "owner"})`),
    ),
    status === "pending" && answers(session, convId, message, verdict, answer),
  );
}

function answers(session, convId, message, verdict, answer) {
  const verdicts = { accept: verdict("accept"), reject: verdict("reject"), request_change: verdict("request_change") };
  const denied = Object.values(verdicts).find((v) => !v.allowed);
  return [
    h(
      "div",
      { class: "answers" },
      guarded("✓ Accept", verdicts.accept, () => answer("accept"), { class: "primary", dataset: { answer: "accept" } }),
      guarded("✕ Reject", verdicts.reject, () => answer("reject"), { class: "danger", dataset: { answer: "reject" } }),
      guarded("↺ Request change", verdicts.request_change, () => requestChangeDialog(session, convId, message), {
        dataset: { answer: "request_change" },
      }),
    ),
    // Why the answers are off, in words (e.g. "not the counterparty"), not only on hover.
    denied && h("div", { class: "why", dataset: { code: denied.code }, title: denied.detail }, denied.reason),
  ];
}

export function responseCard(message) {
  const p = parse(message.payload);
  const label = {
    accept: "✓ Accepted the proposal",
    reject: "✕ Rejected the proposal",
    request_change: "↺ Asked for another time",
  }[p.response];
  return h(
    "div",
    { class: "response", dataset: { response: p.response } },
    h("strong", {}, label ?? p.response),
    p.comment && h("div", {}, `“${p.comment}”`),
    p.suggestedSlots?.length > 0 &&
      h(
        "ul",
        {},
        p.suggestedSlots.map((s) =>
          h(
            "li",
            {},
            `${dateTime(Date.parse(s.startDateTime), s.timezone)} – ${timeIn(Date.parse(s.endDateTime), s.timezone)} (${s.timezone})`,
          ),
        ),
      ),
  );
}
