// The composer: Enter sends, Shift+Enter breaks the line; replying and editing show above the
// field; typing tells the others (throttled); when the policy does not let me post here, the
// field is disabled and says why. The field itself is never redrawn, so typing is not lost.
// What I type is kept as the conversation's draft (the engine's drafts, in my private
// document: it survives switching conversations, reloads and other devices of mine), and a
// counter shows how much room is left once the text nears the limit.
import { h, mount, put, refusalNote } from "../dom.js";
import { displayName } from "../format.js";
import { sendFile } from "../attach.js";
import * as q from "../queries.js";
import { refusalOf, render, ui } from "../state.js";
import { Scheduler } from "./scheduled.js";

/** How long the others show a typing signal (the engine's expiry). */
const TYPING_SHOWN_MS = 6_000;
const TYPING_EVERY_MS = 3000;
/** A message body's limit (core's BODY_MAX_CHARS) and where the counter appears. */
export const BODY_MAX = 4000;
const COUNT_FROM = 3500;
/** Drafts are saved this long after the last keystroke (and at once when leaving). */
const DRAFT_AFTER_MS = 800;

export class Composer {
  constructor(session, conv) {
    this.session = session;
    this.conv = conv;
    this.lastTyping = 0;
    this.mode = "";
    this.context = h("div", { class: "context" });
    this.denied = h("div", { class: "denied", id: `denied-${conv}` });
    this.field = h("textarea", {
      rows: 1,
      placeholder: "Write a message…",
      "aria-label": "Message",
      oninput: () => {
        this.typing();
        this.count();
        this.keepDraftSoon();
      },
      onkeydown: (e) => {
        if (e.key === "Enter" && !e.shiftKey) {
          e.preventDefault();
          this.submit();
        } else if (e.key === "Escape") {
          this.cancel();
        }
      },
    });
    this.button = h("button", { class: "primary", onclick: () => this.submit() }, "Send");
    this.file = h("input", { type: "file", hidden: true, onchange: () => this.attach() });
    this.attachButton = h("button", { class: "attach", title: "Send a file", "aria-label": "Send a file", onclick: () => this.file.click() }, "📎");
    this.progress = h("progress", { class: "upload-progress", max: 1, value: 0, hidden: true });
    this.counter = h("span", { class: "counter", "aria-live": "polite", id: `counter-${conv}` });
    this.refused = h("div");
    this.scheduler = new Scheduler(session, conv);
    this.root = h(
      "footer",
      { class: "composer", dataset: { conv } },
      this.context,
      this.refused,
      h("div", { class: "row" }, this.attachButton, this.file, this.field, this.scheduler.control, this.button),
      this.progress,
      h("div", { class: "under" }, this.denied, this.counter),
      this.scheduler.list,
    );
    this.draftTimer = undefined;
    this.savedDraft = this.session.client.draft(conv) ?? "";
    this.field.value = this.savedDraft;
    this.count();
  }

  /** Characters left, shown near the limit; over it, Send is off. */
  count() {
    const length = [...this.field.value].length;
    const left = BODY_MAX - length;
    this.counter.textContent = length >= COUNT_FROM ? `${left} left` : "";
    this.counter.classList.toggle("over", left < 0);
    this.over = left < 0;
    if (this.over) this.button.disabled = true;
    else if (!this.blocked) this.button.disabled = false;
  }

  keepDraftSoon() {
    clearTimeout(this.draftTimer);
    this.draftTimer = setTimeout(() => this.keepDraft(), DRAFT_AFTER_MS);
  }

  /** Saves the field as the draft when it changed (not while editing a sent message). */
  keepDraft() {
    clearTimeout(this.draftTimer);
    if (ui.editing.has(this.conv)) return;
    const text = this.field.value.slice(0, BODY_MAX * 4);
    if (text === this.savedDraft) return;
    this.savedDraft = text;
    this.session.client.setDraft(this.conv, text.trim() ? [...text].slice(0, BODY_MAX).join("") : undefined).catch((e) => {
      console.warn("draft not kept:", e.message);
    });
  }

  dispose() {
    this.keepDraft();
  }

  update() {
    const { client } = this.session;
    // A refusal may have told us first that we are no longer a member.
    const revoked = ui.revoked.get(this.conv);
    const verdict = revoked
      ? { allowed: false, code: "member_inactive", reason: revoked }
      : client.can({ action: "send", conv: this.conv });
    const editing = ui.editing.get(this.conv);
    const replyTo = ui.replyTo.get(this.conv);
    const blocked = !verdict.allowed && !editing;
    this.blocked = blocked;
    let media;
    try {
      media = client.can({ action: "send", conv: this.conv, kind: "image" });
    } catch (e) {
      media = { allowed: false, reason: e.message };
    }
    // Written only when they changed: writing the same text or attribute is still work for
    // style and layout, on every redraw.
    put(this.field, "disabled", blocked);
    put(this.button, "disabled", blocked || !!this.over);
    put(this.attachButton, "disabled", blocked || !media.allowed || !!this.uploading);
    put(this.attachButton, "title", media.allowed ? "Send a file" : media.reason);
    put(this.denied, "textContent", blocked ? verdict.reason : "");
    put(this.denied.dataset, "code", blocked ? verdict.code : "");
    put(this.button, "textContent", editing ? "Save" : "Send");
    this.scheduler.update();

    const mode = editing ? `edit:${editing}` : replyTo ? `reply:${replyTo}` : "";
    if (mode === this.mode) return;
    this.mode = mode;
    const target = editing ?? replyTo;
    const message = target && q.timeline(client, this.conv).find((i) => i.message.id === target)?.message;
    if (editing && message) {
      this.field.value = message.body;
      this.field.focus();
    }
    mount(
      this.context,
      message && [
        h("span", {}, editing ? "✏️ Editing" : `↩ Replying to ${displayName(message.author)}:`),
        h("span", { class: "muted" }, message.body.slice(0, 80)),
        h("button", { class: "link", onclick: () => this.cancel() }, "Cancel"),
      ],
    );
  }

  cancel() {
    if (ui.editing.has(this.conv)) this.field.value = "";
    ui.editing.delete(this.conv);
    ui.replyTo.delete(this.conv);
    render();
  }

  typing() {
    const now = Date.now();
    if (now - this.lastTyping < TYPING_EVERY_MS || !this.session.client.online) return;
    this.lastTyping = now;
    try {
      this.session.client.setTyping(this.conv, true);
    } catch {
      // Typing is a courtesy; a closed conversation or a lost connection is no error here.
    }
  }

  /** Uploads the chosen file with a progress bar, then sends it. */
  async attach() {
    const file = this.file.files?.[0];
    this.file.value = "";
    if (!file) return;
    this.uploading = true;
    this.attachButton.disabled = true;
    this.progress.hidden = false;
    this.progress.value = 0;
    mount(this.refused);
    try {
      await sendFile(this.session, this.conv, file, (fraction) => (this.progress.value = fraction));
    } catch (e) {
      const refusal = e.code ? { code: e.code, reason: e.message } : refusalOf(e);
      mount(this.refused, refusalNote(refusal, () => mount(this.refused), { class: "note composer-note" }));
    }
    this.uploading = false;
    this.progress.hidden = true;
    render();
  }

  async submit() {
    const text = this.field.value.trim();
    if (!text) return;
    const { client } = this.session;
    const editing = ui.editing.get(this.conv);
    const replyTo = ui.replyTo.get(this.conv);
    if (this.over) return;
    this.field.value = "";
    ui.editing.delete(this.conv);
    ui.replyTo.delete(this.conv);
    // "Stopped typing" only where "typing" was said and the others still show it (they
    // forget it after 6 s): a signal per message otherwise, to every member.
    const saidTyping = this.lastTyping > 0 && Date.now() - this.lastTyping < TYPING_SHOWN_MS;
    this.lastTyping = 0;
    mount(this.refused);
    try {
      if (saidTyping && client.online) client.setTyping(this.conv, false);
      await reopenIfArchived(client, this.conv);
      if (editing) await client.edit(this.conv, editing, text);
      else if (this.scheduler.at() !== undefined) await this.scheduler.schedule(text);
      else await client.send(this.conv, replyTo ? { body: text, replyTo } : text);
      if (!editing) this.keepDraft();
    } catch (e) {
      this.field.value = text;
      // Refused at once (the policy, a limit): said here, above the field, in words.
      mount(this.refused, refusalNote(refusalOf(e), () => mount(this.refused), { class: "note composer-note" }));
    }
    this.count();
    render();
  }
}

/** A client's new message reopens an archived support thread. The engine does not
 * write that with the message, so the page asks for it (the policy lets senders reopen). */
async function reopenIfArchived(client, convId) {
  const conv = client.conversation(convId);
  if (conv?.kind !== "support" || conv.lifecycle.state !== "archived") return;
  if (client.can({ action: "reopen", conv: convId }).allowed) await client.reopen(convId);
}
