// The wiring, once, in jsdom with the real page markup: no IndexedDB here, so the page must start
// on the pairing form with the storage sentence, and the status must follow the (stubbed) server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { installDom, settle } from "./dom-env.js";
import { KEY_STORAGE_TEXT } from "../src/lib/describe.js";

const html = await readFile(new URL("../src/chat/index.html", import.meta.url), "utf8");
const win = installDom(html.replace(/<script[^>]*><\/script>/, ""));
win.open = () => null;
const requests = [];
globalThis.fetch = async (url) => {
  requests.push(String(url));
  if (String(url).endsWith("/api/health")) {
    return new Response(JSON.stringify({ status: "ok", time: Date.now() / 1000, model: { state: "ready", name: "qwen" } }), {
      status: 200,
      headers: { "Content-Type": "application/json" },
    });
  }
  return new Response("{}", { status: 404 });
};

const { ChatInterface, REQUIRED_IDS } = await import("../src/components/chat/ChatInterface.js");
const $ = (sel) => document.querySelector(sel);

test("the page markup has every element the wiring needs", () => {
  for (const id of REQUIRED_IDS) assert.ok(document.getElementById(id), `#${id} missing`);
});

test("starts: no key storage here, so the pairing form says why; the status follows the server", async () => {
  const ui = new ChatInterface($("#app"));
  await ui.start();
  await ui.monitor.running;
  await settle();
  assert.equal($("#app").dataset.view, "pairing");
  assert.equal($("#pairing-view").hidden, false);
  assert.equal($("#chat-view").hidden, true);
  assert.equal($("#pair-reason").dataset.reason, "storage");
  assert.equal($("#pair-storage-error").textContent, KEY_STORAGE_TEXT);
  assert.equal($("#api-origin").textContent, "http://127.0.0.1:8765");
  assert.equal($("#status").dataset.state, "unpaired");
  assert.equal($("#status .status-text").textContent, "Device not paired");
  assert.ok(requests.some((u) => u === "http://127.0.0.1:8765/api/health"));
  assert.equal(ui.session.state.device, null);
  clearTimeout(ui.monitor.pollTimer);
});
