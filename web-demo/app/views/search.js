// The search box above the conversation list (`client.search`, docs/SEARCH.md "On the
// device"): while it holds text, the list gives way to the results, grouped by conversation
// with the matching words highlighted; a click opens the conversation at the message
// (`ui.jump`, scrolled to and flashed by the conversation view). The device's own results
// come offline too; the page says when they are all there is (offline, or the server
// failed). Asked as the user types (after a short pause), again when messages arrive while
// it holds text (once per burst) and when the connection comes back; only the newest
// question's answer is shown.
import { h, mount } from "../dom.js";
import { convTitle, displayName, shortWhen } from "../format.js";
import * as q from "../queries.js";
import { render, select, ui } from "../state.js";

const TYPING_PAUSE_MS = 200;
/** After arrivals, one search for the burst (the results follow what comes in). */
const ARRIVALS_PAUSE_MS = 500;

const PARTIAL = {
  offline: "Offline: messages on this device only.",
  local_only: "Messages on this device only.",
  server: "The server did not answer: messages on this device only.",
};

export function createSearch(session) {
  const input = h("input", {
    type: "search",
    id: "search",
    name: "q",
    placeholder: "Search messages",
    "aria-label": "Search messages",
    autocomplete: "off",
  });
  const results = h("section", { class: "search-results", id: "search-results", "aria-live": "polite", hidden: true });
  const box = h("div", { class: "search-box" }, input);

  let timer;
  let asked = 0;
  let pages = [];

  async function run(append) {
    const query = input.value.trim();
    const mine = ++asked;
    // The list gives way to the results (the sidebar reads `active()` when it redraws).
    if (results.hidden !== !query) render();
    if (!query) {
      pages = [];
      results.hidden = true;
      mount(results);
      return;
    }
    results.hidden = false;
    const cursor = append ? pages.at(-1)?.nextCursor : undefined;
    try {
      const page = await session.client.search(query, { cursor, limit: 20 });
      if (mine !== asked) return;
      pages = append ? [...pages, page] : [page];
      draw();
    } catch (e) {
      if (mine !== asked) return;
      pages = [];
      mount(results, h("p", { class: "search-error", dataset: { code: e.code ?? "error" } }, e.message));
    }
  }

  function draw() {
    const last = pages.at(-1);
    const all = pages.flatMap((p) => p.results);
    // Grouped by conversation, in the order the results came (the best first).
    const groups = new Map();
    for (const r of all) groups.set(r.conv, [...(groups.get(r.conv) ?? []), r]);
    const reason = last?.partialReason?.reason;
    mount(
      results,
      last?.partial &&
        h(
          "p",
          { class: "search-partial", dataset: { reason: reason ?? "unknown" }, title: last.partialReason?.message ?? "" },
          PARTIAL[reason] ?? "Messages on this device only.",
        ),
      all.length === 0 && h("p", { class: "empty" }, "No messages match."),
      [...groups].map(([conv, hits]) => group(conv, hits)),
      last?.nextCursor && h("button", { class: "link", dataset: { action: "search-more" }, onclick: () => run(true) }, "More results"),
    );
  }

  function group(conv, hits) {
    const view = q.conversation(session.client, conv);
    return h(
      "div",
      { class: "search-group", dataset: { conv } },
      h("h4", {}, view ? convTitle(view, session.account) : conv),
      h("ul", {}, hits.map((r) => hit(r))),
    );
  }

  function hit(r) {
    const m = r.message;
    const snippet = r.snippets[0];
    return h(
      "li",
      {
        class: "search-hit",
        tabindex: "0",
        dataset: { conv: r.conv, id: m.id, source: r.source },
        onclick: () => open(r),
        onkeydown: (e) => e.key === "Enter" && open(r),
      },
      h("span", { class: "who" }, displayName(m.author)),
      h("span", { class: "when" }, shortWhen(m.createdAt)),
      h("div", { class: "snippet" }, snippet ? parts(snippet) : m.body.slice(0, 120)),
    );
  }

  function open(r) {
    ui.jump = { conv: r.conv, message: r.message.id };
    select(r.conv);
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => run(false), TYPING_PAUSE_MS);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      input.value = "";
      run(false);
    }
  });
  // Back online: the server's results may add to a partial page.
  session.client.on("connection", (e) => e.state === "online" && input.value.trim() && pages.at(-1)?.partial && run(false));
  session.client.on("timeline", () => {
    if (!input.value.trim()) return;
    clearTimeout(timer);
    timer = setTimeout(() => run(false), ARRIVALS_PAUSE_MS);
  });

  return { box, results, active: () => input.value.trim() !== "" };
}

/** A snippet's runs, the matching words in <mark>. */
function parts(snippet) {
  return [
    snippet.cutStart && "…",
    snippet.parts.map((p) => (p.hit ? h("mark", {}, p.text) : p.text)),
    snippet.cutEnd && "…",
  ];
}
