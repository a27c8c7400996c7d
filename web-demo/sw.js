// The app shell offline: the page, its modules and the wasm module come from the network when
// it answers (so a new build shows at once), else from the last copy kept here — so a reload
// while offline still opens the app, whose data is in IndexedDB. API calls are never cached.
const CACHE = "confab-demo-shell-v1";
const API = /^\/(v1|demo|ws|healthz|readyz|metrics|openapi\.json)(\/|$)/;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// The page sends the URLs it loaded before this worker controlled it; the answer says the
// shell is kept.
self.addEventListener("message", (event) => {
  const urls = (event.data?.cache ?? []).filter(isShell);
  const kept = caches
    .open(CACHE)
    .then((cache) => cache.addAll(urls))
    .then(() => event.source?.postMessage({ kept: urls.length }))
    .catch(() => {});
  event.waitUntil(kept);
});

self.addEventListener("fetch", (event) => {
  if (event.request.method === "GET" && isShell(event.request.url)) {
    event.respondWith(networkFirst(event.request));
  }
});

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
