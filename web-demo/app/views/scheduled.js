// Scheduled messages in the composer: a ⏰ toggle shows a time field; with a time set, the
// composer schedules instead of sending (client.schedule: held in my private document until
// the server posts it at that time, if I may still send then). Under the field, my pending
// ones for this conversation with Cancel, and refused ones with the reason (a reject code)
// and Dismiss. The list is the engine's `scheduled(conv)` view, so it follows my other
// devices and the server's outcome.
import { h, mount, remountIf } from "../dom.js";
import { render } from "../state.js";

/** `<input type=datetime-local>` value of a time, in local time. */
function localValue(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

export class Scheduler {
  constructor(session, conv) {
    this.session = session;
    this.conv = conv;
    this.time = h("input", {
      type: "datetime-local",
      class: "schedule-at",
      "aria-label": "Send at",
      hidden: true,
    });
    this.toggle = h(
      "button",
      {
        class: "link schedule-toggle",
        title: "Schedule for later",
        "aria-label": "Schedule for later",
        onclick: () => this.flip(),
      },
      "⏰",
    );
    this.control = h("span", { class: "schedule" }, this.toggle, this.time);
    this.list = h("ul", { class: "scheduled", "aria-label": "Scheduled messages" });
  }

  flip() {
    this.time.hidden = !this.time.hidden;
    if (!this.time.hidden && !this.time.value) this.time.value = localValue(Date.now() + 10 * 60_000);
  }

  /** The chosen time (ms), or undefined when the composer sends now. */
  at() {
    if (this.time.hidden || !this.time.value) return undefined;
    const ms = new Date(this.time.value).getTime();
    return Number.isFinite(ms) ? ms : undefined;
  }

  /** Schedules `text` at the chosen time; the field closes again once it is taken. */
  async schedule(text) {
    await this.session.client.schedule(this.conv, text, this.at());
    this.time.hidden = true;
    this.time.value = "";
  }

  update() {
    const items = this.session.client.scheduled(this.conv);
    remountIf(this.list, JSON.stringify(items), () =>
      mount(
        this.list,
        items.map((s) =>
          h(
            "li",
            { dataset: { id: s.id, refused: s.refused } },
            h("span", { class: "muted" }, s.refused ? `Not sent (${s.refused})` : `⏰ ${new Date(s.at).toLocaleString()}`),
            h("span", { class: "body" }, s.body.slice(0, 80)),
            h(
              "button",
              {
                class: "link",
                onclick: () =>
                  this.session.client.cancelScheduled(s.id).then(render, (e) => console.warn("not cancelled:", e.message)),
              },
              s.refused ? "Dismiss" : "Cancel",
            ),
          ),
        ),
      ),
    );
  }
}
