// The server's HTTP side: demo users and tokens (only in `--demo` mode), and discovery with
// joining (REST: who is not a member holds no replica to write into). Conversations others
// add this account to are not asked for here: the server tells the client (`membership`).

const USERS_KEY = "confab-demo:users";

/** { tenant, users } from the server; offline, the last answer (the app opens offline too). */
export async function demoUsers() {
  let res;
  try {
    res = await fetch("/demo/users");
  } catch (e) {
    const known = localStorage.getItem(USERS_KEY);
    if (known) return JSON.parse(known);
    throw e;
  }
  if (!res.ok) throw new Error(`/demo/users answered ${res.status}: is the server in --demo mode?`);
  const info = await res.json();
  localStorage.setItem(USERS_KEY, JSON.stringify(info));
  return info;
}

/** A fresh demo token for `user`: { token, account, tenant }. */
export async function demoToken(user) {
  const res = await fetch(`/demo/token?user=${encodeURIComponent(user)}`);
  if (!res.ok) throw new Error(`/demo/token answered ${res.status}`);
  return res.json();
}

/** A REST call as `session`'s account (a fresh demo token): the JSON answer, or an Error with
 * the server's `code` and message. */
async function rest(session, method, path, body) {
  const { token } = await demoToken(session.account);
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    const error = new Error(answer.message ?? `${path} answered ${res.status}`);
    error.code = answer.code ?? `http_${res.status}`;
    throw error;
  }
  return answer;
}

/** One page of the groups and channels this account may find (docs/POLICY.md, "Joining"):
 * { conversations: [{ id, type, title, description, scope, member_count, join, is_member,
 * membership_status }], next_cursor }. */
export function discover(session, { q = "", cursor } = {}) {
  const params = new URLSearchParams({ limit: "20" });
  if (q.trim()) params.set("q", q.trim());
  if (cursor) params.set("cursor", cursor);
  return rest(session, "GET", `/v1/conversations/discover?${params}`);
}

/** Joins `conv` (its `join` is `open`) or asks to (`request`): the same REST calls as any
 * integration, so the policy decides as it does for them. */
export function joinOrAsk(session, conv, join) {
  const id = encodeURIComponent(conv);
  return join === "open"
    ? rest(session, "POST", `/v1/conversations/${id}/members`, { account: session.account })
    : rest(session, "POST", `/v1/conversations/${id}/join-requests`);
}
