// Threads: a sub-conversation hanging on one message. Its id is derived from the message's id
// (`t-<message>`), so everyone who sees the message finds the same thread; its creator invites
// the parent's active members, and they learn about it like any conversation they were added
// to (the server's list of their conversations).
import * as q from "../queries.js";
import { follow } from "../session.js";
import { note, once, openPanel, refusalOf } from "../state.js";

export function threadId(message) {
  return `t-${message}`.slice(0, 64);
}

/** The threads of the known conversations: parent message id → thread conversation id
 * (worked out once per redraw). */
export function threadsByMessage(client) {
  return once("threadsByMessage", () => {
    const out = new Map();
    for (const summary of q.conversations(client)) {
      if (summary.kind !== "thread") continue;
      const link = q.conversation(client, summary.conv)?.thread;
      if (link) out.set(link.message, summary.conv);
    }
    return out;
  });
}

export async function openThread(session, parent, message) {
  const { client, account } = session;
  const id = threadId(message.id);
  if (!client.conversation(id)) {
    const snippet = (message.body || message.kind).slice(0, 40);
    const members = parent.members
      .filter((m) => m.status === "active" && m.account !== account)
      .map((m) => ({ account: m.account, role: "member" }));
    try {
      await client.createThread({ parent: parent.id, message: message.id, id, title: `Thread: ${snippet}`, members });
    } catch (e) {
      note(parent.id, refusalOf(e));
      return;
    }
  }
  follow(session, id);
  openPanel({ kind: "thread", conv: id });
}
