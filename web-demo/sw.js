// The app shell offline: the page, its modules and the wasm module come from the network when
// it answers (so a new build shows at once), else from the copy kept here — so a reload while
// offline still opens the app, whose data is in IndexedDB. API calls are never cached.
//
// What to keep is the build's list (shell.json, written by `cargo xtask demo`), stored when the
// worker installs: not what the page happened to have loaded when the worker started, which
// could miss the wasm module while its download was still running.
const CACHE = "confab-demo-shell-v1";
const API = /^\/(v1|demo|ws|healthz|readyz|metrics|openapi\.json)(\/|$)/;

self.addEventListener("install", (event) => {
  // Installing fails (and is retried at the next load) unless the whole shell is kept.
  event.waitUntil(keepShell().then(() => self.skipWaiting()));
});
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// The page asks whether the shell is kept (tests wait for the answer before cutting the
// network); a worker installed by an older build fills in what is missing first.
self.addEventListener("message", (event) => {
  if (event.data?.type !== "shell?") return;
  const answered = keepShell()
    .then((count) => event.source?.postMessage({ type: "shell", kept: count }))
    .catch((error) => event.source?.postMessage({ type: "shell", error: String(error) }));
  event.waitUntil(answered);
});

self.addEventListener("fetch", (event) => {
  if (event.request.method === "GET" && isShell(event.request.url)) {
    event.respondWith(networkFirst(event.request));
  }
});

/** Stores every file of the build's list that is not stored yet; resolves to their number. */
async function keepShell() {
  const cache = await caches.open(CACHE);
  const listed = await fetch("shell.json", { cache: "no-cache" }).catch(() => cache.match("shell.json"));
  if (!listed?.ok) throw new Error("shell.json is missing: assemble the page with `cargo xtask demo`");
  await cache.put("shell.json", listed.clone());
  const urls = (await listed.json()).map((path) => new URL(path, self.registration.scope).href);
  const missing = [];
  for (const url of urls) if (!(await cache.match(url))) missing.push(url);
  await cache.addAll(missing.map((url) => new Request(url, { cache: "no-cache" })));
  return urls.length;
}

function isShell(href) {
  const url = new URL(href, self.location.href);
  return url.origin === self.location.origin && !API.test(url.pathname);
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const copy = await cache.match(request, { ignoreSearch: true });
    if (copy) return copy;
    throw error;
  }
}
