// The visible outbox: the messages I sent that the server has not accepted yet, oldest first.
// Each ends accepted (it leaves the list) or refused with the reason (kept until dismissed).
// Bookkeeping (read markers, drafts, preferences) and other actions are not listed: their
// refusals show where they happened (under the message, on the conversation).
import { h, mount, remountIf } from "../dom.js";
import { convTitle, describeIntent } from "../format.js";
import * as q from "../queries.js";
import { render } from "../state.js";

const STATE_LABEL = {
  pending: "waiting for network",
  sent: "sent, awaiting server",
  retrying: "waiting for the server, sent again by itself",
  rejected: "refused",
};

export function renderOutbox(el, session) {
  const { client, account } = session;
  const items = q.outbox(client).filter((o) => o.intent.type === "send");
  // Rows are built only when one came, went or changed state, or a title changed (a send's
  // text does not change). The list asked for these conversations in this redraw already.
  const titles = new Map();
  let sig = "";
  for (const { id, intent, status } of items) {
    if (!titles.has(intent.conv)) titles.set(intent.conv, convTitle(q.conversation(client, intent.conv), account));
    sig += `${id}\u0001${status.state}\u0001${status.code ?? ""}\u0001${status.reason ?? ""}\u0001${status.detail ?? ""}\u0001${titles.get(intent.conv)}\n`;
  }
  remountIf(el, sig, () => build(el, client, items, (conv) => titles.get(conv)));
}

function build(el, client, items, titleOf) {
  const waiting = items.filter((i) => i.status.state !== "rejected").length;
  const refused = items.length - waiting;
  const open = el.open;
  // The summary stays (its text changes with every message sent): only the list is new.
  let summary = el.querySelector(":scope > #outbox-summary");
  if (!summary) summary = h("summary", { id: "outbox-summary" });
  summary.dataset.waiting = waiting;
  summary.dataset.refused = refused;
  summary.textContent = `Outbox · ${waiting} waiting${refused > 0 ? ` · ${refused} refused` : ""}`;
  const list =
    items.length === 0
      ? h("p", { class: "why", style: "padding:0 12px 10px;margin:0" }, "Every message you sent has reached the server.")
      : h(
          "ol",
          { id: "outbox" },
          items.map((item) =>
            h(
              "li",
              {
                class: item.status.state,
                dataset: { id: item.id, state: item.status.state, type: item.intent.type },
              },
              h("div", {}, describeIntent(item.intent, titleOf)),
              h("div", { class: "state" }, STATE_LABEL[item.status.state] ?? item.status.state),
              item.status.state === "rejected" &&
                h(
                  "div",
                  { class: "why", dataset: { code: item.status.code }, title: item.status.detail },
                  `${item.status.reason} `,
                  h(
                    "button",
                    {
                      class: "link",
                      onclick: () => {
                        client.dismiss(item.id);
                        render();
                      },
                    },
                    "Dismiss",
                  ),
                ),
            ),
          ),
        );
  if (el.firstChild === summary) {
    while (summary.nextSibling) summary.nextSibling.remove();
    el.append(list);
  } else mount(el, summary, list);
  el.open = open;
}
