// The service worker of /chat/ (built to dist/chat/sw.js, scope /chat/). It keeps the page's own
// static files so the installed app opens at once, also offline; it never stores anything else.
//
// What it handles: only GET requests of this origin whose path is one of the page's static files
// (index.html as /chat/, app.js, app.css, icons, manifest, config.json). Everything else (the API,
// which lives on another origin; any /api/ path; any other method; any other path) is left to the
// browser untouched: no respondWith, nothing cached.
//
// Strategies:
//   the page (/chat/, a navigation) and config.json: network first, the cached copy when the network
//     fails or is slow (NETWORK_TIMEOUT_MS). Both can change without a rebuild: the tunnel setup
//     rewrites config.json (the API origin) and the CSP in _headers, and the cached page carries the
//     headers it was served with. config.json is kept because the page needs the API origin to start
//     offline (a page that was never paired has no other source); it names an origin, no secret.
//   app.js, app.css, icons, manifest: cache first. Their content is part of VERSION (a hash of the
//     built files), so a new deploy is a new sw.js, which fills a new cache and deletes the old ones.

/* global __SW_VERSION__, __SW_ASSETS__ */
export const VERSION = typeof __SW_VERSION__ === "string" ? __SW_VERSION__ : "dev";
export const ASSETS = typeof __SW_ASSETS__ !== "undefined" ? __SW_ASSETS__ : [
  "/chat/", "/chat/app.js", "/chat/app.css", "/chat/config.json", "/chat/manifest.webmanifest",
  "/chat/icon.svg", "/chat/icon-192.png", "/chat/icon-512.png", "/chat/icon-maskable-512.png",
  "/chat/apple-touch-icon.png",
];
export const CACHE_PREFIX = "privchat-static-";
export const NETWORK_TIMEOUT_MS = 3000;
const NETWORK_FIRST = new Set(["/chat/", "/chat/config.json"]);

/**
 * The cache key of a request this worker may answer, or null to leave it alone.
 * @param {{method: string, url: string, mode?: string}} request
 * @param {string} origin  the worker's own origin
 * @param {string[]} assets
 */
export function cacheKey(request, origin, assets = ASSETS) {
  if (!request || request.method !== "GET") return null;
  let url;
  try {
    url = new URL(request.url);
  } catch {
    return null;
  }
  if (url.origin !== origin) return null;
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  const path = url.pathname;
  if (!path.startsWith("/chat/") || path.includes("/api/") || path.startsWith("/api")) return null;
  // A navigation to /chat/ or /chat/index.html (with a query, e.g. a pairing link's hash is not sent) is the page.
  if (request.mode === "navigate" && (path === "/chat/" || path === "/chat/index.html")) return "/chat/";
  if (url.search) return null;
  return assets.includes(path) ? path : null;
}

/** The handlers, given the worker's environment (a real `self` or a fake one in tests). */
export function createWorker({ origin, caches, fetch, version = VERSION, assets = ASSETS, timeoutMs = NETWORK_TIMEOUT_MS,
  setTimeout: later = globalThis.setTimeout, clearTimeout: cancel = globalThis.clearTimeout }) {
  const cacheName = CACHE_PREFIX + version;

  /** A response worth keeping: same-origin, complete, 200. */
  const keepable = (res) => res && res.ok && res.status === 200 && (res.type === "basic" || res.type === "default" || !res.type);

  async function install() {
    const cache = await caches.open(cacheName);
    await Promise.all(assets.map(async (path) => {
      const res = await fetch(new URL(path, origin).href, { cache: "reload", credentials: "same-origin" });
      if (!keepable(res)) throw new Error(`could not fetch ${path} (${res && res.status})`);
      await cache.put(path, res);
    }));
  }

  async function activate() {
    for (const name of await caches.keys()) {
      if (name.startsWith(CACHE_PREFIX) && name !== cacheName) await caches.delete(name);
    }
  }

  async function fromCache(key) {
    const cache = await caches.open(cacheName);
    return cache.match(key);
  }

  function networkWithTimeout(request) {
    return new Promise((resolve, reject) => {
      const timer = later(() => reject(new Error("network timeout")), timeoutMs);
      fetch(request).then((res) => {
        cancel(timer);
        resolve(res);
      }, (err) => {
        cancel(timer);
        reject(err);
      });
    });
  }

  async function networkFirst(request, key) {
    try {
      const res = await networkWithTimeout(request);
      if (keepable(res)) {
        const copy = res.clone();
        caches.open(cacheName).then((c) => c.put(key, copy)).catch(() => {});
        return res;
      }
      // A 5xx from the host: the cached copy is better; anything else (404 …) is what it is.
      if (res.status >= 500) return (await fromCache(key)) || res;
      return res;
    } catch (err) {
      const cached = await fromCache(key);
      if (cached) return cached;
      throw err;
    }
  }

  async function cacheFirst(request, key) {
    const cached = await fromCache(key);
    if (cached) return cached;
    const res = await fetch(request);
    if (keepable(res)) {
      const copy = res.clone();
      caches.open(cacheName).then((c) => c.put(key, copy)).catch(() => {});
    }
    return res;
  }

  /** The response promise for a request, or null when the worker leaves it to the browser. */
  function respond(request) {
    const key = cacheKey(request, origin, assets);
    if (!key) return null;
    return NETWORK_FIRST.has(key) ? networkFirst(request, key) : cacheFirst(request, key);
  }

  return { cacheName, install, activate, respond };
}

/** Wires the handlers to a ServiceWorkerGlobalScope. */
export function attach(scope) {
  const worker = createWorker({
    origin: scope.location.origin,
    caches: scope.caches,
    fetch: (...args) => scope.fetch(...args),
  });
  scope.addEventListener("install", (event) => {
    event.waitUntil(worker.install().then(() => scope.skipWaiting()));
  });
  scope.addEventListener("activate", (event) => {
    event.waitUntil(worker.activate().then(() => scope.clients.claim()));
  });
  scope.addEventListener("fetch", (event) => {
    const response = worker.respond(event.request);
    if (response) event.respondWith(response);
  });
  return worker;
}

// In a worker (or a test's fake `self` with a `registration`), wire up at once.
if (typeof self !== "undefined" && self && typeof self.addEventListener === "function" && "registration" in self) {
  attach(self);
}
