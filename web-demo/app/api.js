// The server's HTTP side: demo users and tokens (only in `--demo` mode) and the REST list of
// the signed-in account's conversations, which is how a member learns about groups, channels
// and threads someone else created (their ids are random; direct and support ids are not).

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

/** REST with a cached bearer token, fetched again once when refused (the demo server's
 * secret changes when it restarts). */
export class Rest {
  constructor(user) {
    this.user = user;
    this.token = undefined;
  }

  async get(path) {
    for (let attempt = 0; attempt < 2; attempt++) {
      this.token ??= (await demoToken(this.user)).token;
      const res = await fetch(path, { headers: { authorization: `Bearer ${this.token}` } });
      if (res.status === 401) {
        this.token = undefined;
        continue;
      }
      if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`);
      return res.json();
    }
    throw new Error(`GET ${path}: token refused`);
  }

  /** Ids of the conversations the server lists for this account (active memberships). */
  async conversationIds() {
    const { conversations } = await this.get("/v1/conversations");
    return conversations.map((c) => c.id);
  }
}
