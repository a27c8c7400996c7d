// The composer: Enter sends, Shift+Enter breaks the line; replying and editing show above the
// field; typing tells the others (throttled); when the policy does not let me post here, the
// field is disabled and says why. The field itself is never redrawn, so typing is not lost.
import { h, mount, toast } from "../dom.js";
import { displayName } from "../format.js";
import { render, ui } from "../state.js";

const TYPING_EVERY_MS = 3000;

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
      oninput: () => this.typing(),
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
    this.root = h(
      "footer",
      { class: "composer", dataset: { conv } },
      this.context,
      h("div", { class: "row" }, this.field, this.button),
      this.denied,
    );
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
    this.field.disabled = blocked;
    this.button.disabled = blocked;
    this.denied.textContent = blocked ? `You can't post here: ${verdict.reason} (${verdict.code})` : "";
    this.button.textContent = editing ? "Save" : "Send";

    const mode = editing ? `edit:${editing}` : replyTo ? `reply:${replyTo}` : "";
    if (mode === this.mode) return;
    this.mode = mode;
    const target = editing ?? replyTo;
    const message = target && client.timeline(this.conv).find((i) => i.message.id === target)?.message;
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

  async submit() {
    const text = this.field.value.trim();
    if (!text) return;
    const { client } = this.session;
    const editing = ui.editing.get(this.conv);
    const replyTo = ui.replyTo.get(this.conv);
    this.field.value = "";
    ui.editing.delete(this.conv);
    ui.replyTo.delete(this.conv);
    this.lastTyping = 0;
    try {
      if (client.online) client.setTyping(this.conv, false);
      await reopenIfArchived(client, this.conv);
      if (editing) await client.edit(this.conv, editing, text);
      else await client.send(this.conv, replyTo ? { body: text, replyTo } : text);
    } catch (e) {
      this.field.value = text;
      toast(`Not sent: ${e.message}`, "error");
    }
    render();
  }
}

/** Seed 002: a client's new message reopens an archived support thread. The engine does not
 * write that with the message, so the page asks for it (the policy lets senders reopen). */
async function reopenIfArchived(client, convId) {
  const conv = client.conversation(convId);
  if (conv?.kind !== "support" || conv.lifecycle.state !== "archived") return;
  if (client.can({ action: "reopen", conv: convId }).allowed) await client.reopen(convId);
}
