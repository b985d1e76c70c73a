// The service worker of /chat/ (built to dist/chat/sw.js, scope /chat/). It keeps the page's own
// static files so the installed app opens at once, also offline; it never stores anything else.
//
// What it handles: only GET requests of this origin whose path is one of the page's static files
// (index.html as /chat/, app.js, opaque.js, app.css, icons, manifest, config.json). Everything else
// (the API, which lives on another origin; any /api/ path; any other method; any other path) is left
// to the browser untouched: no respondWith, nothing cached. opaque.js is the typed code's OPAQUE
// client, which app.js import()s only when a code is typed; it is pinned like app.js all the same
// (code the worker did not check would be a way around its map), but fetched, checked and cached
// when it is first asked for, not at install (ON_DEMAND).
//
// Strategies:
//   the page (/chat/, a navigation) and config.json: network first, the cached copy when the network
//     fails or is slow (NETWORK_TIMEOUT_MS). Both can change without a rebuild: the tunnel setup
//     rewrites config.json (the API origin) and the CSP in _headers, and the cached page carries the
//     headers it was served with. config.json is kept because the page needs the API origin to start
//     offline (a page that was never paired has no other source); it names an origin, no secret.
//   app.js, opaque.js, app.css, icons, manifest: cache first. Their content is part of VERSION (a hash of the
//     built files), so a new deploy is a new sw.js, which fills a new cache and deletes the old ones.
//
// Integrity: the build fixes the SHA-256 of every file it caches (INTEGRITY, path -> base64), the
// page (/chat/ = chat/index.html) included, config.json excepted (UNPINNED: the tunnel setup and the
// tests rewrite it after the build; it names the API origin, never code). Every 200 response the
// worker would keep and every cached copy it would serve is hashed first; one that does not match is
// never served and never kept (a cached one is deleted). A cached copy that fails is replaced by one
// more fetch from the network (bypassing the HTTP cache), checked too; when that fails as well the
// answer is the worker's own 500, never the changed file. For the page (network first) a changed
// network copy gives way to the cached copy when that one still matches. This catches a file changed
// in transit or in the browser's storage, and a deploy that changed a file without a new sw.js; a
// host that serves a new sw.js with a new map is not caught here (SECURITY.md section 11;
// `privchat site verify` compares a deployed site with the local build).

/* global __SW_VERSION__, __SW_ASSETS__, __SW_INTEGRITY__ */
export const VERSION = typeof __SW_VERSION__ === "string" ? __SW_VERSION__ : "dev";
export const ASSETS = typeof __SW_ASSETS__ !== "undefined" ? __SW_ASSETS__ : [
  "/chat/", "/chat/app.js", "/chat/opaque.js", "/chat/app.css", "/chat/config.json", "/chat/manifest.webmanifest",
  "/chat/icon.svg", "/chat/icon-192.png", "/chat/icon-512.png", "/chat/icon-maskable-512.png",
  "/chat/apple-touch-icon.png",
];
/** path -> base64 SHA-256 of the built file; null only in the unbuilt source (tests, dev), never in dist. */
export const INTEGRITY = typeof __SW_INTEGRITY__ !== "undefined" ? __SW_INTEGRITY__ : null;
/** Pinned and served like the others, but fetched when the page first asks for them, not at install:
 *  the typed code's OPAQUE client (158 KB gzip) is needed by a browser that pairs by typing a code,
 *  once, and by no other; a first visit should not download it. */
export const ON_DEMAND = Object.freeze(["/chat/opaque.js"]);
/** Cached but not pinned: rewritten per deployment after the build (the API origin only). */
export const UNPINNED = Object.freeze(["/chat/config.json"]);
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

/** Base64 of the SHA-256 of `bytes` (an ArrayBuffer or a view), as the build writes it. */
export async function sha256Base64(bytes, subtle = globalThis.crypto && globalThis.crypto.subtle) {
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  let binary = "";
  for (const b of digest) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The worker's own answer when neither the cache nor the network has the file as built. */
export function integrityFailure(key) {
  const text = `privchat: ${key} does not match the file this version of the page was built with, so it was not used.\n` +
    "Reload in a minute (a new version may be arriving); if this stays, the site may have been changed: " +
    "its owner can check it with `privchat site verify`.\n";
  return new Response(text, {
    status: 500,
    statusText: "Integrity check failed",
    headers: {
      "Content-Type": "text/plain; charset=utf-8",
      "Cache-Control": "no-store",
      "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
      "X-Content-Type-Options": "nosniff",
    },
  });
}

/** The handlers, given the worker's environment (a real `self` or a fake one in tests). */
export function createWorker({ origin, caches, fetch, version = VERSION, assets = ASSETS, timeoutMs = NETWORK_TIMEOUT_MS,
  integrity = INTEGRITY, subtle = globalThis.crypto && globalThis.crypto.subtle,
  setTimeout: later = globalThis.setTimeout, clearTimeout: cancel = globalThis.clearTimeout }) {
  const cacheName = CACHE_PREFIX + version;

  /** A response worth keeping: same-origin, complete, 200. */
  const keepable = (res) => res && res.ok && res.status === 200 && (res.type === "basic" || res.type === "default" || !res.type);

  /** Whether `res` (a 200) is the built file for `key`; its body is read from a clone, `res` stays usable. */
  async function intact(res, key) {
    if (!integrity || UNPINNED.includes(key)) return true;
    const want = integrity[key];
    if (typeof want !== "string") return false; // a pinned path the map does not name: fail closed
    try {
      return (await sha256Base64(await res.clone().arrayBuffer(), subtle)) === want;
    } catch {
      return false;
    }
  }

  async function evict(key) {
    try {
      const cache = await caches.open(cacheName);
      await cache.delete(key);
    } catch { /* nothing to evict */ }
  }

  function store(key, res) {
    const copy = res.clone();
    caches.open(cacheName).then((c) => c.put(key, copy)).catch(() => {});
  }

  async function install() {
    const cache = await caches.open(cacheName);
    await Promise.all(assets.filter((path) => !ON_DEMAND.includes(path)).map(async (path) => {
      const res = await fetch(new URL(path, origin).href, { cache: "reload", credentials: "same-origin" });
      if (!keepable(res)) throw new Error(`could not fetch ${path} (${res && res.status})`);
      // A file that is not the one this worker was built with: the install fails, the worker in
      // place (and its verified cache) stays, and the browser tries again on a later visit.
      if (!(await intact(res, path))) throw new Error(`${path} does not match its build hash`);
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

  /** The cached copy when it is intact; a changed one is deleted. `undefined` when there is none. */
  async function intactFromCache(key) {
    const cached = await fromCache(key);
    if (!cached) return undefined;
    if (await intact(cached, key)) return cached;
    await evict(key);
    return null;
  }

  /** One more try from the network, past the HTTP cache, after a cached copy failed its check. */
  async function refetch(key) {
    let res;
    try {
      res = await fetch(new URL(key, origin).href, { cache: "reload", credentials: "same-origin" });
    } catch {
      return integrityFailure(key);
    }
    if (!keepable(res)) return res.status >= 500 || !res.status ? integrityFailure(key) : res;
    if (!(await intact(res, key))) return integrityFailure(key);
    store(key, res);
    return res;
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
    let res;
    try {
      res = await networkWithTimeout(request);
    } catch (err) {
      const cached = await intactFromCache(key);
      if (cached) return cached;
      if (cached === null) return refetch(key);
      throw err;
    }
    if (keepable(res)) {
      if (await intact(res, key)) {
        store(key, res);
        return res;
      }
      // Changed on the way: the cached copy when it still matches, else the worker's own error.
      return (await intactFromCache(key)) || integrityFailure(key);
    }
    // A 5xx from the host: the cached copy is better; anything else (404, a redirect …) is what it is.
    if (res.status >= 500) return (await intactFromCache(key)) || res;
    return res;
  }

  async function cacheFirst(request, key) {
    const cached = await intactFromCache(key);
    if (cached) return cached;
    if (cached === null) return refetch(key); // it was there and changed: evicted, one more fetch
    const res = await fetch(request);
    if (keepable(res)) {
      if (!(await intact(res, key))) return integrityFailure(key);
      store(key, res);
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
