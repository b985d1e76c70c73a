// The installable app: manifest and icons in dist, and the service worker's choices, tested by
// importing its module with a fake `self` (caches, fetch) as a ServiceWorkerGlobalScope would give.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import vm from "node:vm";
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
  assert.deepEqual(directives["script-src"], ["'self'", "'wasm-unsafe-eval'"]);
});

test("sw.js is built with a content-hash version and the list of the page's files", async () => {
  const sw = await readFile(join(dist, "chat/sw.js"), "utf8");
  const m = /"([0-9a-f]{16})"/.exec(sw);
  assert.ok(m, "no version hash in sw.js");
  assert.ok(!sw.includes("__SW_VERSION__") && !sw.includes("export "), "sw.js must be a classic script");
  // The same build twice gives the same version; it names no other origin (build.test.js checks all of dist).
  assert.ok(sw.includes('"/chat/app.js"') && sw.includes('"/chat/opaque.js"') && sw.includes('"/chat/icon-512.png"'));
});

test("the OPAQUE client (opaque.js, loaded on demand) is cached and pinned like app.js", async () => {
  const { ASSETS } = await import("../src/sw/sw.js");
  assert.ok(ASSETS.includes("/chat/opaque.js"));
  const manifest = JSON.parse(await readFile(join(dist, "chat/integrity.json"), "utf8"));
  const sw = await readFile(join(dist, "chat/sw.js"), "utf8");
  const want = createHash("sha256").update(await readFile(join(dist, "chat/opaque.js"))).digest("base64");
  assert.equal(manifest.files["/chat/opaque.js"], want);
  assert.ok(sw.includes(`"/chat/opaque.js":"${want}"`), "sw.js does not pin opaque.js");
});

// ------------------------------------------------------------ the worker's logic, with a fake self

function fakeResponse(body, { status = 200, type = "basic", url = "" } = {}) {
  return {
    body, status, type, url, ok: status >= 200 && status < 300,
    clone() { return fakeResponse(body, { status, type, url }); },
    async arrayBuffer() { return new TextEncoder().encode(body).buffer; },
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
        // A copy, as the Cache API gives: what was served once can be served again.
        async match(req) { const res = store.get(keyOf(req)); return res && res.clone ? res.clone() : res; },
        async delete(req) { return store.delete(keyOf(req)); },
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

test("install caches exactly the page's static files, under a versioned name (the on-demand OPAQUE client when first asked for)", async () => {
  const { ASSETS, CACHE_PREFIX, ON_DEMAND, VERSION } = await import("../src/sw/sw.js");
  const { self, listeners, fetched } = await loadWorker();
  await dispatchLifecycle(listeners, "install");
  assert.deepEqual([...self.caches.stores.keys()], [CACHE_PREFIX + VERSION]);
  const keys = [...self.caches.stores.get(CACHE_PREFIX + VERSION).keys()].sort();
  assert.deepEqual(keys, ASSETS.filter((path) => !ON_DEMAND.includes(path)).sort());
  assert.deepEqual([...ON_DEMAND], ["/chat/opaque.js"]);
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

// ------------------------------------------------------------ integrity: the worker checks what it serves

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");

test("the build pins every file the worker caches by its SHA-256 (config.json excepted), in sw.js and integrity.json", async () => {
  const { ASSETS, UNPINNED } = await import("../src/sw/sw.js");
  const sw = await readFile(join(dist, "chat/sw.js"), "utf8");
  const manifest = JSON.parse(await readFile(join(dist, "chat/integrity.json"), "utf8"));
  assert.equal(manifest.format, "privchat-page-integrity");
  assert.deepEqual(UNPINNED, ["/chat/config.json"]);
  const pinned = ASSETS.filter((p) => !UNPINNED.includes(p));
  assert.deepEqual(Object.keys(manifest.files).sort(), [...pinned].sort());
  for (const path of pinned) {
    const file = join(dist, path.endsWith("/") ? `${path}index.html` : path);
    const want = sha256(await readFile(file));
    assert.equal(manifest.files[path], want, path);
    assert.ok(sw.includes(JSON.stringify(path) + ":" + JSON.stringify(want)), `sw.js does not carry the hash of ${path}`);
  }
  assert.ok(!sw.includes("__SW_INTEGRITY__"), "the map was not put into sw.js");
  // The two files site verify checks besides: the worker itself and config.json, by their built bytes.
  assert.equal(manifest.verify_only["/chat/sw.js"], sha256(await readFile(join(dist, "chat/sw.js"))));
  assert.equal(manifest.verify_only["/chat/config.json"], sha256(await readFile(join(dist, "chat/config.json"))));
});

/** A worker over a fake site whose map pins "file <path>" for every asset; `answer(url)` is the network. */
async function integrityWorker(answer) {
  const { createWorker, ASSETS } = await import("../src/sw/sw.js");
  const integrity = Object.fromEntries(ASSETS.filter((p) => p !== "/chat/config.json").map((p) => [p, sha256(`file ${p}`)]));
  const caches = fakeCaches();
  const fetched = [];
  const worker = createWorker({
    origin: ORIGIN, caches, integrity,
    fetch: async (input) => {
      const url = typeof input === "string" ? input : input.url;
      fetched.push(url);
      return answer.current(url);
    },
  });
  return { worker, caches, fetched, store: () => caches.stores.get(worker.cacheName) };
}
const settle = () => new Promise((r) => setImmediate(r));
const tampered = (url) => fakeResponse(`alert("owned") // ${new URL(url).pathname}`, { url });

test("a changed cached app.js is not served: evicted, fetched once more, and the intact copy served and kept", async () => {
  const answer = { current: site };
  const { worker, fetched, store } = await integrityWorker(answer);
  await worker.install();
  assert.equal((await worker.respond(req(`${ORIGIN}/chat/app.js`))).body, "file /chat/app.js", "an intact cached copy is served");
  store().set("/chat/app.js", tampered(`${ORIGIN}/chat/app.js`)); // someone changed the browser's cache
  const n = fetched.length;
  const res = await worker.respond(req(`${ORIGIN}/chat/app.js`));
  assert.equal(res.body, "file /chat/app.js");
  assert.deepEqual(fetched.slice(n), [`${ORIGIN}/chat/app.js`], "one fetch from the network");
  await settle();
  assert.equal(store().get("/chat/app.js").body, "file /chat/app.js", "the intact copy replaced the changed one");
});

test("a changed cached app.js and a changed network copy: the worker's own 500, never the changed file, nothing kept", async () => {
  const answer = { current: site };
  const { worker, fetched, store } = await integrityWorker(answer);
  await worker.install();
  store().set("/chat/app.js", tampered(`${ORIGIN}/chat/app.js`));
  answer.current = tampered;
  const n = fetched.length;
  const res = await worker.respond(req(`${ORIGIN}/chat/app.js`));
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.ok(!text.includes("owned") && text.includes("does not match"), text);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(fetched.length, n + 1, "the network is asked once, not in a loop");
  await settle();
  assert.equal(store().has("/chat/app.js"), false, "the changed copy was evicted and the other one not kept");
  // Offline with a changed cached copy: still the worker's own error, not the file.
  store().set("/chat/app.css", tampered(`${ORIGIN}/chat/app.css`));
  answer.current = () => { throw new TypeError("Failed to fetch"); };
  assert.equal((await worker.respond(req(`${ORIGIN}/chat/app.css`))).status, 500);
});

test("a changed network response is never cached nor served: app.js on a cache miss, and the page falls back to its intact cached copy", async () => {
  const answer = { current: site };
  const { worker, store } = await integrityWorker(answer);
  await worker.install();
  store().delete("/chat/app.js");
  answer.current = tampered;
  const js = await worker.respond(req(`${ORIGIN}/chat/app.js`));
  assert.equal(js.status, 500);
  await settle();
  assert.equal(store().has("/chat/app.js"), false, "a changed network copy was cached");

  // The page is network first: a changed network copy gives way to the cached one that matches.
  const page = await worker.respond(req(`${ORIGIN}/chat/`, { mode: "navigate" }));
  assert.equal(page.body, "file /chat/");
  await settle();
  assert.equal(store().get("/chat/").body, "file /chat/");
  // config.json is not pinned (rewritten per deployment): a new one is taken and kept.
  answer.current = (url) => fakeResponse('{"apiOrigin":"https://api.example.test"}', { url });
  assert.equal((await worker.respond(req(`${ORIGIN}/chat/config.json`))).body, '{"apiOrigin":"https://api.example.test"}');
});

test("install fails on a changed file, so the worker in place and its verified cache stay", async () => {
  const answer = { current: (url) => (url.endsWith("/chat/app.css") ? tampered(url) : site(url)) };
  const { worker } = await integrityWorker(answer);
  await assert.rejects(worker.install(), /\/chat\/app\.css does not match/);
});

// The built worker itself (dist/chat/sw.js, as the browser runs it), over the built files.
/**
 * A file changed both in the cache and on the network: the worker answers its own 500, whose body
 * carries nothing of either copy (`leak` is a word both contain), and the changed copy leaves the cache.
 */
async function refusesTamperedEverywhere({ listeners, network, store }, path, mode, [cached, fetched], leak) {
  store.set(path, new Response(cached, { status: 200 }));
  network.current = () => new Response(fetched, { status: 200 });
  const refused = await dispatchFetch(listeners, req(`${ORIGIN}${path}`, { mode }));
  assert.equal(refused.status, 500);
  assert.ok(!(await refused.text()).includes(leak));
  await settle();
  assert.equal(store.has(path), false);
}

async function builtWorker() {
  const code = await readFile(join(dist, "chat/sw.js"), "utf8");
  const files = new Map();
  const { ASSETS } = await import("../src/sw/sw.js");
  for (const path of ASSETS) files.set(path, await readFile(join(dist, path.endsWith("/") ? `${path}index.html` : path)));
  const network = { current: (url) => {
    const body = files.get(new URL(url).pathname);
    return body ? new Response(body, { status: 200 }) : new Response("not found", { status: 404 });
  } };
  const fake = fakeSelf((url) => network.current(url));
  const context = vm.createContext({ self: fake.self, URL, Response, Headers, TextEncoder, btoa, crypto: globalThis.crypto,
    setTimeout, clearTimeout, console });
  vm.runInContext(code, context, { filename: "sw.js" });
  assert.ok(fake.listeners.install && fake.listeners.fetch, "the built worker did not wire its events");
  await dispatchLifecycle(fake.listeners, "install");
  const [store] = fake.self.caches.stores.values();
  return { ...fake, files, network, store };
}

test("the built sw.js: a tampered cached app.js is not served, the built one is; a tampered network copy is not cached", async () => {
  const { listeners, files, network, store } = await builtWorker();
  const bytes = async (res) => Buffer.from(await res.arrayBuffer());
  const built = files.get("/chat/app.js");

  const first = await dispatchFetch(listeners, req(`${ORIGIN}/chat/app.js`, { mode: "no-cors" }));
  assert.ok((await bytes(first)).equals(built), "the built app.js, from the cache");

  // Tampered in the cache, the network still right: the built file, and the cache mended.
  store.set("/chat/app.js", new Response(Buffer.concat([built, Buffer.from(";fetch('//evil.example')")]), { status: 200 }));
  const mended = await dispatchFetch(listeners, req(`${ORIGIN}/chat/app.js`, { mode: "no-cors" }));
  assert.equal(mended.status, 200);
  assert.ok((await bytes(mended)).equals(built));
  await settle();
  assert.ok((await bytes(store.get("/chat/app.js").clone())).equals(built));

  // Tampered in the cache and on the network: a 500, and the tampered copy is in the cache no more.
  await refusesTamperedEverywhere({ listeners, network, store }, "/chat/app.js", "no-cors",
    ["alert('cache')", "alert('network')"], "alert");

  // Not in the cache, tampered on the network: not served, not cached.
  const again = await dispatchFetch(listeners, req(`${ORIGIN}/chat/app.js`, { mode: "no-cors" }));
  assert.equal(again.status, 500);
  await settle();
  assert.equal(store.has("/chat/app.js"), false, "a tampered network response was cached");

  // The page: a tampered network copy gives way to the verified cached one, which stays.
  const page = await dispatchFetch(listeners, req(`${ORIGIN}/chat/`, { mode: "navigate" }));
  assert.ok((await bytes(page)).equals(files.get("/chat/")));
  await settle();
  assert.ok((await bytes(store.get("/chat/").clone())).equals(files.get("/chat/")));
});

test("the built sw.js: opaque.js is fetched when first asked for, checked, kept, and a tampered copy of it is never served", async () => {
  const { listeners, files, network, store } = await builtWorker();
  const bytes = async (res) => Buffer.from(await res.arrayBuffer());
  const built = files.get("/chat/opaque.js");
  assert.equal(store.has("/chat/opaque.js"), false, "install cached opaque.js: a first visit would download it");
  // The page import()s it: a same-origin cors GET, fetched, checked against its pin, then kept.
  const first = await dispatchFetch(listeners, req(`${ORIGIN}/chat/opaque.js`, { mode: "cors" }));
  assert.ok((await bytes(first)).equals(built));
  await settle();
  assert.ok(store.has("/chat/opaque.js"), "the checked copy was not kept");
  await refusesTamperedEverywhere({ listeners, network, store }, "/chat/opaque.js", "cors",
    ["export const startLogin = () => fetch('//evil.example')", "export const startLogin = () => 'network'"], "startLogin");
});
