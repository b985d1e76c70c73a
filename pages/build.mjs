// Builds pages/dist/: one self-contained folder for Cloudflare Pages (output dir pages/dist).
//   public/**            copied verbatim (index.html, chat/config.json, …)
//   _headers             copied to dist/_headers
//   src/chat/index.html  → dist/chat/index.html
//   src/chat/main.js     → dist/chat/app.js (bundled with marked + DOMPurify + highlight.js's core and a
//                          few of its languages, minified), an ES module
//   src/lib/opaque.js    → dist/chat/opaque.js: the typed code's OPAQUE client (@serenity-kit/opaque,
//                          its WebAssembly inline), which app.js import()s only when a code is typed
//                          (a build of its own: app.js does not carry it). Every JS file the build writes
//                          must be one the service worker caches and pins (src/sw/sw.js ASSETS).
//   src/chat/app.css     → dist/chat/app.css (minified)
//   src/sw/sw.js         → dist/chat/sw.js (the service worker, scope /chat/), versioned by a hash
//                          of every file it caches, so a new deploy replaces the old cache, and
//                          carrying the SHA-256 of each of those files (config.json excepted), which
//                          it checks before it keeps or serves one
//   (the same map)       → dist/chat/integrity.json, which `privchat site verify` reads to compare a
//                          deployed site with this build
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { ASSETS as SW_ASSETS, UNPINNED as SW_UNPINNED } from "./src/sw/sw.js";
import { cp, mkdir, rm, copyFile, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(join(dist, "chat"), { recursive: true });
await cp(join(here, "public"), dist, { recursive: true });
await copyFile(join(here, "_headers"), join(dist, "_headers"));
await copyFile(join(here, "src/chat/index.html"), join(dist, "chat/index.html"));

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
  target: ["es2022", "chrome109", "firefox115", "safari16"],
};
// Two builds, one file each: app.js reaches opaque.js only by import() (api.js), kept as written
// ("./opaque.js", external to app.js's build), so app.js does not carry it. Not one build with code
// splitting: code the two shared would go to a chunk-<hash>.js (esbuild's CommonJS helpers do, once
// both carry a CommonJS module, as highlight.js's core is), and the worker's list of files is fixed in
// its source. Neither file imports anything from the other.
const pageBuild = {
  ...common,
  outdir: join(dist, "chat"),
  entryNames: "[name]",
  format: "esm",
  platform: "browser",
  charset: "utf8",
  metafile: true,
  absWorkingDir: here, // the metafile's paths are relative to it
};
const pageOutputs = [];
for (const [name, entry, external] of [["app", "src/chat/main.js", ["./opaque.js"]], ["opaque", "src/lib/opaque.js", []]]) {
  const result = await build({ ...pageBuild, entryPoints: { [name]: join(here, entry) }, external });
  pageOutputs.push(...Object.keys(result.metafile.outputs));
}
const pageFiles = pageOutputs.map((out) => "/" + relative(dist, join(here, out)).split(sep).join("/"));
const uncached = pageFiles.filter((path) => !SW_ASSETS.includes(path));
if (uncached.length) {
  throw new Error(`the build wrote ${uncached.join(", ")}, which the service worker does not cache: add it to ASSETS in src/sw/sw.js (or keep the import from making a shared chunk)`);
}
await build({
  ...common,
  entryPoints: [join(here, "src/chat/app.css")],
  outfile: join(dist, "chat/app.css"),
});

// marked carries its issue-tracker address in an error message ("Please report this to https://…"),
// highlight.js two of its pages in console warnings. They are never loaded, but dist/ must name no
// third-party origin at all (test/build.test.js): keep the words, drop the scheme.
for (const path of pageFiles) {
  const file = join(dist, path);
  await writeFile(file, (await readFile(file, "utf8"))
    .replaceAll("https://github.com/markedjs/marked", "github.com/markedjs/marked")
    .replaceAll("https://github.com/highlightjs/highlight.js", "github.com/highlightjs/highlight.js"));
}

// The service worker: its cache name is a hash of the files it precaches (config.json excepted: the
// tunnel setup rewrites it after the build, and the worker always asks the network for it first).
// The same files, each pinned by its SHA-256 (base64): the worker never keeps or serves one that differs.
const hash = createHash("sha256");
const integrity = {};
for (const path of SW_ASSETS) {
  if (SW_UNPINNED.includes(path)) continue;
  const file = join(dist, path.endsWith("/") ? path + "index.html" : path);
  const bytes = await readFile(file);
  hash.update(path).update("\0").update(bytes).update("\0");
  integrity[path] = createHash("sha256").update(bytes).digest("base64");
}
const swVersion = hash.digest("hex").slice(0, 16);
await build({
  ...common,
  entryPoints: [join(here, "src/sw/sw.js")],
  outfile: join(dist, "chat/sw.js"),
  format: "iife",
  platform: "browser",
  charset: "utf8",
  define: {
    __SW_VERSION__: JSON.stringify(swVersion),
    __SW_ASSETS__: JSON.stringify(SW_ASSETS),
    __SW_INTEGRITY__: JSON.stringify(integrity),
  },
});
// What `privchat site verify` compares: the pinned files, and the two the map cannot pin (the worker
// itself, which carries the map; config.json, which names the API origin), by their built bytes.
const extra = {};
for (const path of ["/chat/sw.js", ...SW_UNPINNED]) {
  extra[path] = createHash("sha256").update(await readFile(join(dist, path))).digest("base64");
}
await writeFile(join(dist, "chat/integrity.json"), JSON.stringify({
  format: "privchat-page-integrity", version: 1, sw_version: swVersion, algorithm: "sha256-base64",
  files: integrity, verify_only: extra,
}, null, 2) + "\n");

// Sanity: the page must not need inline script or style.
const html = await readFile(join(dist, "chat/index.html"), "utf8");
if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html) || /\son[a-z]+\s*=/i.test(html) || /\sstyle\s*=/i.test(html)) {
  throw new Error("chat/index.html has inline script, event handlers or style attributes (blocked by the CSP)");
}
console.log(`built ${dist} (service worker version ${swVersion})`);
