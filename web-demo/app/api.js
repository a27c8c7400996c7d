// The server's HTTP side: demo users and tokens (only in `--demo` mode). Conversations others
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
