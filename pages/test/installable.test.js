// The installable app: manifest and icons in dist, and the service worker's choices, tested by
// importing its module with a fake `self` (caches, fetch) as a ServiceWorkerGlobalScope would give.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const dist = join(root, "dist");
const ORIGIN = "https://chat.example.test";

before(() => {
  if (!existsSync(join(dist, "chat", "sw.js"))) {
    execFileSync(process.execPath, [join(root, "build.mjs")], { stdio: "inherit" });
  }
});

/** Width, height and colour type from a PNG's signature and IHDR chunk. */
async function pngInfo(file) {
  const b = await readFile(file);
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${file} is not a PNG`);
  assert.equal(b.toString("latin1", 12, 16), "IHDR");
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), colorType: b[25] };
}

test("the manifest: name, scope, start_url, standalone, colours, icons of the right sizes", async () => {
  const m = JSON.parse(await readFile(join(dist, "chat/manifest.webmanifest"), "utf8"));
  assert.equal(m.name, "privchat");
  assert.equal(m.short_name, "privchat");
  assert.equal(m.start_url, "/chat/");
  assert.equal(m.scope, "/chat/");
  assert.equal(m.id, "/chat/");
  assert.equal(m.display, "standalone");
  // The page's own colours (app.css: --bg light, the light top bar) and the dark one in index.html.
  const css = await readFile(join(root, "src/chat/app.css"), "utf8");
  assert.match(css, new RegExp(`--bg: light-dark\\(${m.background_color}, `));
  assert.match(css, new RegExp(`--panel: light-dark\\(${m.theme_color}, `));
  const sizes = (purpose) => m.icons.filter((i) => i.type === "image/png" && i.purpose.split(" ").includes(purpose)).map((i) => i.sizes);
  assert.ok(sizes("any").includes("192x192") && sizes("any").includes("512x512"));
  assert.ok(sizes("maskable").includes("512x512"));
  for (const icon of m.icons) {
    assert.ok(icon.src.startsWith("/chat/"), icon.src);
    const file = join(dist, icon.src);
    assert.ok(existsSync(file), `${icon.src} missing`);
    if (icon.type !== "image/png") continue;
    const { width, height, colorType } = await pngInfo(file);
    assert.equal(`${width}x${height}`, icon.sizes, icon.src);
    if (icon.purpose === "maskable") assert.equal(colorType, 2, "a maskable icon is full bleed (no alpha)");
  }
});

test("index.html links the manifest, the Apple touch icon (180, opaque) and theme colours", async () => {
  const html = await readFile(join(dist, "chat/index.html"), "utf8");
  assert.match(html, /<link rel="manifest" href="\/chat\/manifest\.webmanifest">/);
  const apple = /<link rel="apple-touch-icon" href="([^"]+)"/.exec(html);
  assert.ok(apple, "no apple-touch-icon");
  const info = await pngInfo(join(dist, apple[1]));
  assert.deepEqual([info.width, info.height, info.colorType], [180, 180, 2]);
  assert.match(html, /<meta name="theme-color" media="\(prefers-color-scheme: light\)" content="#ffffff">/);
  assert.match(html, /<meta name="theme-color" media="\(prefers-color-scheme: dark\)" content="#171a21">/);
});

test("the CSP allows the worker and the manifest from this origin only, and stays strict", async () => {
  const text = await readFile(join(dist, "_headers"), "utf8");
  const csp = /^\/chat\/\*\n(?:\s+.*\n)*?\s+Content-Security-Policy: (.*)$/m.exec(text)[1];
  const directives = Object.fromEntries(csp.split(";").map((d) => d.trim().split(/\s+/)).map(([n, ...v]) => [n, v]));
  assert.deepEqual(directives["worker-src"], ["'self'"]);
  assert.deepEqual(directives["manifest-src"], ["'self'"]);
  assert.deepEqual(directives["default-src"], ["'none'"]);
  assert.deepEqual(directives["script-src"], ["'self'"]);
});

test("sw.js is built with a content-hash version and the list of the page's files", async () => {
  const sw = await readFile(join(dist, "chat/sw.js"), "utf8");
  const m = /"([0-9a-f]{16})"/.exec(sw);
  assert.ok(m, "no version hash in sw.js");
  assert.ok(!sw.includes("__SW_VERSION__") && !sw.includes("export "), "sw.js must be a classic script");
  // The same build twice gives the same version; it names no other origin (build.test.js checks all of dist).
  assert.ok(sw.includes('"/chat/app.js"') && sw.includes('"/chat/icon-512.png"'));
});

// ------------------------------------------------------------ the worker's logic, with a fake self

function fakeResponse(body, { status = 200, type = "basic", url = "" } = {}) {
  return {
    body, status, type, url, ok: status >= 200 && status < 300,
    clone() { return fakeResponse(body, { status, type, url }); },
  };
}

function fakeCaches() {
  const stores = new Map();
  const keyOf = (req) => (typeof req === "string" ? req : new URL(req.url).pathname);
  return {
    stores,
    async open(name) {
      if (!stores.has(name)) stores.set(name, new Map());
      const store = stores.get(name);
      return {
        async put(req, res) { store.set(keyOf(req), res); },
        async match(req) { return store.get(keyOf(req)); },
        async keys() { return [...store.keys()]; },
      };
    },
    async keys() { return [...stores.keys()]; },
    async delete(name) { return stores.delete(name); },
  };
}

/** A fake ServiceWorkerGlobalScope; `network(url)` answers its fetches (throw = offline). */
function fakeSelf(network) {
  const listeners = {};
  const fetched = [];
  const self = {
    location: { origin: ORIGIN },
    registration: { scope: `${ORIGIN}/chat/` },
    caches: fakeCaches(),
    clients: { claim: async () => {} },
    skipWaiting: async () => {},
    addEventListener: (type, fn) => { listeners[type] = fn; },
    fetch: async (input) => {
      const url = typeof input === "string" ? input : input.url;
      fetched.push(url);
      return network(url);
    },
  };
  return { self, listeners, fetched };
}

/** Dispatches a fetch event; returns the response promise or null when the worker let it through. */
function dispatchFetch(listeners, request) {
  let responded = null;
  listeners.fetch({ request, respondWith: (p) => { responded = p; } });
  return responded;
}

async function dispatchLifecycle(listeners, type) {
  const waits = [];
  listeners[type]({ waitUntil: (p) => waits.push(p) });
  await Promise.all(waits);
}

const site = (url) => fakeResponse(`file ${new URL(url).pathname}`, { url });
const req = (url, extra = {}) => ({ method: "GET", url, mode: "cors", ...extra });

async function loadWorker(network = site) {
  const fake = fakeSelf(network);
  globalThis.self = fake.self;
  try {
    // A fresh module instance per worker: a query makes it a new module.
    await import(`../src/sw/sw.js?instance=${Math.random()}`);
  } finally {
    delete globalThis.self;
  }
  assert.ok(fake.listeners.install && fake.listeners.activate && fake.listeners.fetch, "the worker did not wire its events");
  return fake;
}

test("install caches exactly the page's static files, under a versioned name", async () => {
  const { ASSETS, CACHE_PREFIX, VERSION } = await import("../src/sw/sw.js");
  const { self, listeners, fetched } = await loadWorker();
  await dispatchLifecycle(listeners, "install");
  assert.deepEqual([...self.caches.stores.keys()], [CACHE_PREFIX + VERSION]);
  const keys = [...self.caches.stores.get(CACHE_PREFIX + VERSION).keys()].sort();
  assert.deepEqual(keys, [...ASSETS].sort());
  for (const key of keys) assert.ok(key.startsWith("/chat/") && !key.includes("/api/"), key);
  assert.ok(fetched.every((u) => u.startsWith(`${ORIGIN}/chat/`)));
});

test("activate deletes the caches of older versions (a new deploy replaces the old cache)", async () => {
  const { self, listeners } = await loadWorker();
  await (await self.caches.open("privchat-static-0123456789abcdef")).put("/chat/app.js", site(`${ORIGIN}/chat/app.js`));
  await (await self.caches.open("someone-else")).put("/x", site(`${ORIGIN}/x`));
  await dispatchLifecycle(listeners, "install");
  await dispatchLifecycle(listeners, "activate");
  const names = [...self.caches.stores.keys()];
  assert.ok(!names.includes("privchat-static-0123456789abcdef"));
  assert.ok(names.includes("someone-else"), "caches the worker does not own are left alone");
  assert.equal(names.filter((n) => n.startsWith("privchat-static-")).length, 1);
});

test("never answers or caches a cross-origin request, an /api/ path, a non-GET or an unknown path", async () => {
  const { self, listeners, fetched } = await loadWorker();
  await dispatchLifecycle(listeners, "install");
  const before = fetched.length;
  const untouched = [
    req("http://127.0.0.1:8765/api/chat"),
    req("https://chat-api.example.test/api/conversations"),
    req("https://chat-api.example.test/chat/app.js"), // the same path on another origin
    req(`${ORIGIN}/api/health`),
    req(`${ORIGIN}/chat/api/health`),
    req(`${ORIGIN}/chat/app.js`, { method: "POST" }),
    req(`${ORIGIN}/chat/app.js?v=2`),
    req(`${ORIGIN}/chat/secret.json`),
    req(`${ORIGIN}/index.html`),
    req(`${ORIGIN}/api/chat`, { mode: "navigate" }),
  ];
  for (const r of untouched) assert.equal(dispatchFetch(listeners, r), null, `${r.method} ${r.url} was intercepted`);
  assert.equal(fetched.length, before, "the worker fetched something for a request it must leave alone");
  const all = [];
  for (const store of self.caches.stores.values()) all.push(...store.keys());
  assert.ok(all.every((k) => k.startsWith("/chat/") && !k.includes("api")), all.join(", "));
});

test("static files come from the cache first; the page and config.json from the network, the cache when offline", async () => {
  let online = true;
  const { listeners, fetched } = await loadWorker((url) => {
    if (!online) throw new TypeError("Failed to fetch");
    return site(url);
  });
  await dispatchLifecycle(listeners, "install");

  let n = fetched.length;
  const js = await dispatchFetch(listeners, req(`${ORIGIN}/chat/app.js`));
  assert.equal(js.body, "file /chat/app.js");
  assert.equal(fetched.length, n, "app.js came from the network, not the cache");

  const page = await dispatchFetch(listeners, req(`${ORIGIN}/chat/`, { mode: "navigate" }));
  assert.equal(page.body, "file /chat/");
  assert.equal(fetched.length, n + 1, "the page is asked from the network first");

  online = false;
  n = fetched.length;
  for (const [url, mode, body] of [[`${ORIGIN}/chat/`, "navigate", "file /chat/"],
    [`${ORIGIN}/chat/index.html`, "navigate", "file /chat/"],
    [`${ORIGIN}/chat/config.json`, "cors", "file /chat/config.json"],
    [`${ORIGIN}/chat/app.css`, "no-cors", "file /chat/app.css"]]) {
    const res = await dispatchFetch(listeners, req(url, { mode }));
    assert.equal(res.body, body, url);
  }
  assert.ok(fetched.length >= n);

  // An API request offline is still not the worker's business: the page sees the real failure.
  assert.equal(dispatchFetch(listeners, req("http://127.0.0.1:8765/api/me")), null);
});

test("a slow network does not hold the page: the cached copy after the timeout", async () => {
  const { createWorker } = await import("../src/sw/sw.js");
  const caches = fakeCaches();
  let hang = false;
  const timers = [];
  const worker = createWorker({
    origin: ORIGIN,
    caches,
    fetch: (input) => (hang ? new Promise(() => {}) : Promise.resolve(site(typeof input === "string" ? input : input.url))),
    setTimeout: (fn) => { timers.push(fn); return timers.length; },
    clearTimeout: () => {},
  });
  await worker.install();
  hang = true;
  const pending = worker.respond(req(`${ORIGIN}/chat/`, { mode: "navigate" }));
  await new Promise((r) => setImmediate(r));
  timers.at(-1)(); // the timeout fires
  assert.equal((await pending).body, "file /chat/");
});

test("a failed or cross-origin response is never stored", async () => {
  const { createWorker } = await import("../src/sw/sw.js");
  const caches = fakeCaches();
  let answer = (url) => site(url);
  const worker = createWorker({ origin: ORIGIN, caches, fetch: async (input) => answer(typeof input === "string" ? input : input.url) });
  await worker.install();
  const store = caches.stores.get(worker.cacheName);
  store.delete("/chat/icon.svg");
  answer = (url) => fakeResponse("opaque", { type: "opaque", status: 0, url });
  await worker.respond(req(`${ORIGIN}/chat/icon.svg`));
  answer = (url) => fakeResponse("oops", { status: 404, url });
  await worker.respond(req(`${ORIGIN}/chat/icon.svg`));
  await new Promise((r) => setImmediate(r));
  assert.equal(store.has("/chat/icon.svg"), false);
});
