// Checks the built folder (run `npm run build` first; `npm test` builds it when it is missing).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, readdir, stat } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const dist = join(root, "dist");

const ALLOWED_URLS = new Set(["http://127.0.0.1:8765", "http://localhost:8765"]);
const W3_NAMESPACE = /^http:\/\/www\.w3\.org\/(?:1999\/xhtml|2000\/svg|1998\/Math\/MathML|1999\/xlink|XML\/1998\/namespace|2000\/xmlns\/?)$/;

before(() => {
  if (!existsSync(join(dist, "chat", "app.js"))) {
    execFileSync(process.execPath, [join(root, "build.mjs")], { stdio: "inherit" });
  }
});

async function files(dir) {
  const out = [];
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    if ((await stat(p)).isDirectory()) out.push(...(await files(p)));
    else out.push(p);
  }
  return out;
}

/** Parses the Cloudflare Pages _headers format: rules of a path line and indented "Name: value" lines. */
export function parseHeaders(text) {
  const rules = [];
  let current = null;
  for (const raw of text.split(/\r?\n/)) {
    if (!raw.trim() || raw.trim().startsWith("#")) continue;
    if (/^\s/.test(raw)) {
      assert.ok(current, `header line before any path: ${raw}`);
      const m = /^\s+([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      assert.ok(m, `bad header line: ${raw}`);
      current.headers.push([m[1], m[2].trim()]);
    } else {
      current = { pattern: raw.trim(), headers: [] };
      rules.push(current);
    }
  }
  return rules;
}

test("dist has the expected files", () => {
  for (const f of ["index.html", "_headers", "chat/index.html", "chat/app.js", "chat/opaque.js", "chat/app.css", "chat/config.json"]) {
    assert.ok(existsSync(join(dist, f)), `dist/${f} missing`);
  }
});

test("no reference to any http(s) origin but the loopback API defaults and w3.org namespaces", async () => {
  const bad = [];
  for (const f of await files(dist)) {
    const text = await readFile(f, "utf8");
    for (const m of text.matchAll(/https?:\/\/[^\s"'`)<>\\;,]*/gi)) {
      const url = m[0].replace(/[.:]+$/, "");
      if (ALLOWED_URLS.has(url)) continue;
      if (W3_NAMESPACE.test(url)) continue;
      if (/^https?:\/\/$/i.test(url)) continue; // a bare scheme literal (marked turns "www.x" into "http://www.x")
      bad.push(`${relative(dist, f)}: ${url}`);
    }
  }
  assert.deepEqual(bad, []);
});

test("config.json names the loopback API", async () => {
  const cfg = JSON.parse(await readFile(join(dist, "chat/config.json"), "utf8"));
  assert.equal(cfg.apiOrigin, "http://127.0.0.1:8765");
});

test("chat/index.html needs no inline script, handlers or styles, and loads only same-origin files", async () => {
  const html = await readFile(join(dist, "chat/index.html"), "utf8");
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), "inline <script>");
  assert.ok(!/\son[a-z]+\s*=/i.test(html), "inline event handler");
  assert.ok(!/\sstyle\s*=/i.test(html), "style attribute");
  assert.ok(!/<style/i.test(html), "<style> element");
  for (const m of html.matchAll(/\s(?:src|href)="([^"]+)"/g)) {
    assert.ok(m[1].startsWith("/") || m[1].startsWith("#"), `non-local reference ${m[1]}`);
  }
});

test("_headers: strict CSP and privacy headers for /chat/*", async () => {
  const text = await readFile(join(dist, "_headers"), "utf8");
  const rules = parseHeaders(text);
  const chat = rules.find((r) => r.pattern === "/chat/*");
  assert.ok(chat, "no /chat/* rule");
  const get = (name) => chat.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

  const csps = get("Content-Security-Policy");
  assert.equal(csps.length, 1);
  const directives = Object.fromEntries(
    csps[0].split(";").map((d) => d.trim()).filter(Boolean).map((d) => {
      const [name, ...values] = d.split(/\s+/);
      return [name, values];
    }),
  );
  assert.deepEqual(directives["default-src"], ["'none'"]);
  // 'wasm-unsafe-eval': the typed code's OPAQUE client compiles its WebAssembly; no JavaScript eval.
  assert.deepEqual(directives["script-src"], ["'self'", "'wasm-unsafe-eval'"]);
  assert.deepEqual(directives["style-src"], ["'self'"]);
  const tokens = Object.values(directives).flat();
  assert.ok(!tokens.includes("'unsafe-inline'") && !tokens.includes("'unsafe-eval'") && !tokens.includes("'unsafe-hashes'"));
  assert.equal(directives["connect-src"][0], "'self'");
  assert.ok(directives["connect-src"].includes("http://127.0.0.1:8765"));
  assert.deepEqual(directives["frame-ancestors"], ["'none'"]);
  assert.deepEqual(directives["base-uri"], ["'none'"]);
  assert.deepEqual(directives["form-action"], ["'none'"]);
  // The tunnel setup script rewrites the origins after "connect-src 'self'" on this one line.
  assert.match(text, /^\s+Content-Security-Policy: .*connect-src 'self' [^;]+;/m);

  assert.deepEqual(get("Referrer-Policy"), ["no-referrer"]);
  assert.deepEqual(get("X-Content-Type-Options"), ["nosniff"]);
  const pp = get("Permissions-Policy");
  assert.equal(pp.length, 1);
  // The microphone for this page's own voice button only: never for a frame or another origin.
  for (const feature of ["camera=()", "microphone=(self)", "geolocation=()"]) assert.ok(pp[0].includes(feature), feature);
});

test("the OPAQUE client is a file of its own, which app.js loads only by import() and does not carry", async () => {
  const app = await readFile(join(dist, "chat/app.js"), "utf8");
  const opaque = await readFile(join(dist, "chat/opaque.js"), "utf8");
  // The library: its inline WebAssembly (base64 of "\0asm") and its wasm-bindgen glue.
  assert.ok(opaque.includes("AGFzbQ") && opaque.includes("finishClientLogin"), "opaque.js does not carry the library");
  // (WebAssembly.instantiate, not the bare word: highlight.js's JavaScript grammar names WebAssembly as a built-in.)
  for (const mark of ["AGFzbQ", "finishClientLogin", "startClientLogin", "__wbindgen", "WebAssembly.instantiate"]) {
    assert.ok(!app.includes(mark), `app.js carries ${mark}`);
  }
  assert.ok(opaque.length > 300_000, `opaque.js is ${opaque.length} bytes`);
  assert.ok(app.length < 400_000, `app.js is ${app.length} bytes: did the library end up in it?`); // app.js is ~350 KB with highlight.js, the library 420 KB
  // A dynamic import of the sibling file, and no static one: the chunk is fetched only when called for.
  assert.match(app, /\bimport\("\.\/opaque\.js"\)/);
  assert.ok(!/(?:^|[;}\s])import\s*[{*\w][^;]*from\s*["']\.\/opaque\.js["']/.test(app), "app.js imports opaque.js statically");
  assert.ok(!/from\s*["']\.\/app\.js["']/.test(opaque), "opaque.js imports from app.js (a shared chunk)");
  // Every JS file the build wrote is app.js, opaque.js or the worker: no hashed shared chunk.
  const js = (await readdir(join(dist, "chat"))).filter((f) => f.endsWith(".js")).sort();
  assert.deepEqual(js, ["app.js", "opaque.js", "sw.js"]);
});
