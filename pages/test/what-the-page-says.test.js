// What the page says when things go wrong, as the owner sees them: the whole page wired as ChatInterface
// wires it, over the real ApiClient and a stand-in server (test/e2e-server.js), and the parts that
// jsdom can drive alone (markdown, the import sentence, the Devices dialog's storage line).
//   1  a message not sent says the reason of now, offers Send now once the server is back, keeps
//      its place until then, goes out as the newest message, and can be discarded
//   2  a server down at page load is "Can't load your conversations yet", not an empty history
//   3  a revoked device is never offered a send that cannot work, also after a reload
//   5  switching versions halfway up keeps the switched message where it was on screen
//   9  the browser is asked to keep the device key after pairing; Devices says whether it does
//  11  import says "already here"; code blocks do not start with a blank line; the stored first-token time
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { installDom, settle, frame, until } from "./dom-env.js";
import { fakeServer, makeDevice, makeServerKey } from "./e2e-server.js";

const html = await readFile(new URL("../src/chat/index.html", import.meta.url), "utf8");
const win = installDom(html.replace(/<script[^>]*><\/script>/, ""));
win.open = () => null;
const { ChatInterface } = await import("../src/components/chat/ChatInterface.js");
const { MessageList } = await import("../src/components/chat/MessageList.js");
const { DevicesPanel } = await import("../src/components/chat/Panels.js");
const { DevicesController } = await import("../src/app/devices.js");
const { createMarkdown } = await import("../src/lib/markdown.js");
const { Session } = await import("../src/lib/session.js");
const $ = (sel) => document.querySelector(sel);
const pristine = document.body.innerHTML;

const ORIGIN = "http://127.0.0.1:8765";
let server;
let device;
let routes;
let ui;
let up; // the server answers
let online; // navigator.onLine
let storage; // localStorage, shared by the "tabs" of one test
let kept; // what the page asked of navigator.storage
const uis = [];

Object.defineProperty(navigator, "onLine", { get: () => online, configurable: true });

/** A reply stream of `text` to a new user message `u<n>` (in conversation c1). */
let turn = 0;
function reply(text, parent, asked) {
  turn += 1;
  const a = `a${turn}`;
  const u = `u${turn}`;
  conversation.push({ id: u, parent_id: parent, role: "user", content: asked, status: "complete" },
    { id: a, parent_id: u, role: "assistant", content: text, status: "complete", ttft_ms: 42 });
  return { events: [
    { id: `${a}:0`, event: "start", data: { conversation_id: "c1", user_message_id: u, assistant_message_id: a, user_parent_id: parent } },
    { id: `${a}:1`, event: "token", data: { text } },
    { id: `${a}:2`, event: "done", data: { finish_reason: "stop", timings: { ttft_ms: 42, tokens_per_second: 10 }, usage: { completion_tokens: 1 } } },
  ] };
}
let conversation;

beforeEach(async () => {
  storage = new Map();
  Object.defineProperty(globalThis, "localStorage", { configurable: true, value: {
    getItem: (k) => (storage.has(k) ? storage.get(k) : null), setItem: (k, v) => storage.set(k, String(v)), removeItem: (k) => storage.delete(k) } });
  server = await makeServerKey();
  const made = await makeDevice(server.pin);
  device = { ...made, fingerprint: "ABCD-EFGH-IJKL", name: "This phone", apiOrigin: ORIGIN };
  up = true;
  online = true;
  turn = 0;
  conversation = [];
  kept = [];
  routes = {
    "GET /api/auth/device": () => ({ json: { status: "active" } }),
    "GET /api/models": () => ({ json: { default: "qwen", models: [] } }),
    "GET /api/history?limit=50": () => ({ json: { conversations: conversation.length ? [{ id: "c1", title: "Hello" }] : [], next_before: null } }),
    "GET /api/history/c1": () => ({ json: { id: "c1", messages: conversation, current_leaf: conversation.at(-1) && conversation.at(-1).id } }),
  };
  const fake = fakeServer({ keys: [server], devices: new Map([[made.deviceId, made.keyPair.publicKey]]), route: (req) => {
    const r = routes[`${req.method} ${req.target}`];
    return r ? r(req) : { status: 404, json: { error: { code: "not_found", message: "No." } } };
  } });
  globalThis.fetch = async (url, init = {}) => {
    if (!online || !up) throw new TypeError("Failed to fetch");
    if (new URL(String(url)).pathname === "/api/health") {
      return new Response(JSON.stringify({ status: "ok", time: Date.now() / 1000, model: { state: "ready", name: "qwen" }, e2e: server.pin }), {
        status: 200, headers: { "Content-Type": "application/json" } });
    }
    return fake.fetch(url, init);
  };
});

/** One page load over the same storage (a reload is another call). */
async function openPage() {
  document.body.innerHTML = pristine;
  ui = new ChatInterface($("#app"), { keys: {
    loadDevice: async () => device,
    forgetDevice: async () => {},
    saveApiOrigin: async () => {},
    updateServerKey: async () => {},
    keepStorage: async () => (kept.push("persist"), true),
    storageKept: async () => false,
  } });
  uis.push(ui);
  await ui.start();
  await ui.monitor.running;
  await settle(10);
  return ui;
}

afterEach(() => {
  for (const u of uis.splice(0)) {
    clearTimeout(u.monitor.pollTimer);
    clearInterval(u.monitor.countdownTimer);
  }
});

const users = () => [...document.querySelectorAll('.message[data-role="user"]')].map((m) => [m.querySelector(".message-body").textContent, m.dataset.status]);
const unsent = () => $('.message[data-status="failed"]');
const note = () => unsent().querySelector(".message-notice span").textContent;
const buttons = () => [...unsent().querySelectorAll(".message-notice button")].map((b) => b.textContent);

const BUSY = ["sending", "streaming", "pending", "queued"];
/** The newest message is a finished reply: nothing is on its way any more. */
const replyDone = () => {
  const last = [...document.querySelectorAll(".message")].at(-1);
  return Boolean(last) && last.dataset.role === "assistant" && !BUSY.includes(last.dataset.status);
};

async function send(text) {
  $("#message-input").value = text;
  await ui.input.submit();
  // Wait for what the test checks, not for a number of turns: the message is kept unsent, or it
  // went out and its reply is finished.
  await until(() => {
    const mine = users().filter(([t]) => t === text).at(-1);
    return Boolean(mine) && (mine[1] === "failed" || (mine[1] === "complete" && replyDone()));
  }, `"${text}" to be sent or kept unsent`);
  await frame();
}

async function goOnline() {
  online = true;
  window.dispatchEvent(new window.Event("online"));
  await until(() => $("#status").dataset.state === "ready", "the status to be ready");
  await settle(5);
}

test("an unsent message says the reason of now, Send now when back, keeps its place, goes out newest, can be discarded", async () => {
  await openPage();
  online = false;
  window.dispatchEvent(new window.Event("offline"));
  await send("hello");
  assert.deepEqual(users(), [["hello", "failed"]]);
  assert.match(note(), /offline/);
  assert.deepEqual(buttons(), ["Discard"], "nothing to send with while offline");

  // The network is back: the note says so, with one Send now; not "The browser is offline." any more.
  await goOnline();
  assert.equal($("#status").dataset.state, "ready");
  assert.doesNotMatch(note(), /offline/);
  assert.match(note(), /connection is back/);
  assert.deepEqual(buttons(), ["Send now", "Discard"]);

  // Two more, answered: "hello" is not pinned below them, in this tab or after a reload.
  routes["POST /api/chat"] = () => reply("First answer.", null, "two");
  await send("two");
  routes["POST /api/chat"] = () => reply("Second answer.", "a1", "three");
  await send("three");
  assert.deepEqual(users(), [["hello", "failed"], ["two", "complete"], ["three", "complete"]]);
  await openPage();
  await ui.history.reopening;
  await until(() => users().length === 3, "the three messages after the reload");
  assert.deepEqual(users(), [["hello", "failed"], ["two", "complete"], ["three", "complete"]],
    "after a reload too: where it was written, not pinned below the answered ones");
  assert.doesNotMatch(note(), /Retry sends it/);
  assert.deepEqual(buttons(), ["Send now", "Discard"]);

  // Send now: it leaves its place and goes out as the newest message; its reply follows it.
  routes["POST /api/chat"] = () => reply("Hello to you.", "a2", "hello");
  unsent().querySelector(".retry-button").click();
  await until(() => unsent() === null && replyDone(), "the unsent message to go out and its reply to finish");
  await frame();
  assert.equal(unsent(), null);
  const all = [...document.querySelectorAll(".message")];
  assert.equal(all.at(-2).querySelector(".message-body").textContent, "hello");
  assert.equal(all.at(-1).dataset.role, "assistant");
  assert.equal([...storage.keys()].filter((k) => k.startsWith("privchat.unsent.")).length, 0, "not kept any more");

  // Discard: another one left unsent goes, from the screen and from this browser.
  up = false;
  await send("never mind");
  assert.ok(unsent());
  unsent().querySelector(".discard-button").click();
  assert.equal(unsent(), null);
  assert.equal([...storage.keys()].filter((k) => k.startsWith("privchat.unsent.")).length, 0);
});

test("a server down at page load: \"Can't load your conversations yet\" in the list and the main area; the composer says what a message sent now becomes", async () => {
  up = false;
  await openPage();
  assert.equal($("#status").dataset.state, "unreachable");
  const sidebarNote = $("#conversation-empty");
  assert.equal(sidebarNote.hidden, false);
  assert.match(sidebarNote.textContent, /^Can't load your conversations yet: server not reachable — start it with privchat serve/);
  assert.doesNotMatch(document.body.textContent, /No conversations yet|Start a conversation/);
  assert.match($(".empty-state").textContent, /Can't load your conversations yet/);
  const composer = $("#input-note");
  assert.equal(composer.hidden, false);
  assert.match(composer.textContent, /kept in this browser, to send when the server is back/);
  await send("typed while it is down");
  assert.equal(unsent().querySelector(".message-notice code").textContent, "privchat serve", "a command is drawn as code");
  assert.doesNotMatch(note(), /`/);
  assert.deepEqual(buttons(), ["Discard"]);

  // The server is back: the list loads and the invitation returns; the composer note goes.
  up = true;
  await ui.monitor.checkNow(true);
  await until(() => sidebarNote.textContent === "No conversations yet.", "the list to load");
  assert.equal($("#status").dataset.state, "ready");
  assert.equal(sidebarNote.textContent, "No conversations yet.");
  assert.match($(".empty-state").textContent, /Start a conversation/);
  assert.equal(composer.hidden, true);
});

test("a revoked device is never offered Send now or Retry, also after a reload", async () => {
  await openPage();
  up = false;
  await send("are you there?");
  assert.ok(unsent());
  routes["GET /api/auth/device"] = () => ({ status: 403, json: { error: { code: "device_revoked", message: "Revoked." } } });
  up = true;
  await ui.monitor.checkNow(true);
  await until(() => $("#status").dataset.state === "revoked", "the revoked state");
  assert.equal($("#status").dataset.state, "revoked");
  assert.match(note(), /revoked/);
  assert.deepEqual(buttons(), ["Discard"]);

  await openPage(); // a reload: the message is still kept, and still cannot be sent
  assert.equal($("#status").dataset.state, "revoked");
  assert.match(note(), /this device was revoked, so it cannot send/);
  assert.doesNotMatch(note(), /Retry/);
  assert.deepEqual(buttons(), ["Discard"]);
});

test("switching versions halfway up keeps the switched message where it was on screen", async () => {
  const scroller = document.createElement("div");
  const jump = document.createElement("button");
  document.body.replaceChildren(scroller);
  scroller.append(jump);
  const list = new MessageList(scroller, createMarkdown(win), jump);
  // A layout stand-in: each message is 100 px tall, stacked; the view is 300 px high.
  Object.defineProperty(scroller, "clientHeight", { configurable: true, value: 300 });
  Object.defineProperty(scroller, "scrollHeight", { configurable: true, get: () => list.views.length * 100 });
  scroller.getBoundingClientRect = () => ({ top: 0 });
  const realAdd = list.add.bind(list);
  list.add = (m, o) => {
    const view = realAdd(m, o);
    view.el.getBoundingClientRect = () => ({ top: list.views.indexOf(view) * 100 - scroller.scrollTop });
    return view;
  };
  const path = (v) => Array.from({ length: 20 }, (_, i) => ({ id: i === 6 ? `m6${v}` : `m${i}`, role: i % 2 ? "assistant" : "user", content: `${i}` }));
  list.show(path("a"));
  scroller.scrollTop = 450; // reading halfway up: m6a is 150 px down the view
  list.follow = false;
  const before = list.offsetOf(list.views[6]);
  list.show(path("b"), { anchor: { id: "m6b", offset: before } });
  assert.equal(list.offsetOf(list.views[6]), before, "the switched message stays where the owner was looking");
  assert.equal(scroller.scrollTop, 450, "not scrolled to the end");
  assert.equal(list.follow, false);
});

test("after pairing the browser is asked to keep the key; Devices says whether it does and what to do", async () => {
  await openPage();
  ui.paired(device, { name: device.name });
  await until(() => kept.length > 0, "the storage request");
  assert.deepEqual(kept, ["persist"]);
  await ui.devices.open();
  await until(() => $("#this-device-storage") && $("#this-device-storage").dataset.kept, "the storage line");
  const line = $("#this-device-storage");
  assert.equal(line.dataset.kept, "false");
  assert.match(line.textContent, /may delete/);
  assert.match(line.textContent, /home screen|install/);

  // A browser that keeps it says so.
  const session = new Session({ device });
  const panel = new DevicesPanel({ actions: new DevicesController({ api: { listDevices: async () => ({ devices: [] }) }, session, report: String,
    onForget() {}, onRevokedSelf() {}, storageKept: async () => true }) });
  panel.renderMine();
  await settle();
  assert.match(panel.mine.querySelector(".storage-note").textContent, /keeps this site's storage/);
});

test("import says how many were already here; a code block has no blank first line; the stored first-token time is shown live", async () => {
  await openPage();
  ui.api.importHistory = async () => ({ imported_conversations: 0, imported_messages: 0, skipped: 21 });
  await ui.history.importFile({ name: "export.json", text: async () => "{}" });
  assert.match($("#sidebar-message").textContent, /^Imported 0 conversations, 0 messages, 21 already here\.$/);
  assert.doesNotMatch($("#sidebar-message").textContent, /skipped/);

  const md = createMarkdown(win);
  const code = md.renderFragment("```python\n\nprint(1)\n```").querySelector("code");
  assert.equal(code.textContent, "print(1)\n");

  routes["POST /api/chat"] = () => reply("Hi.", null, "hi");
  await send("hi");
  const live = [...document.querySelectorAll('.message[data-role="assistant"] .message-meta')].at(-1).textContent;
  assert.match(live, /first token 42 ms/, "the server's figure, the one it stores");
  await openPage(); // a reload shows the same
  await ui.history.reopening;
  await until(() => /first token 42 ms/.test([...document.querySelectorAll('.message[data-role="assistant"] .message-meta')].at(-1)?.textContent || ""), "the first-token time");
  assert.match([...document.querySelectorAll('.message[data-role="assistant"] .message-meta')].at(-1).textContent, /first token 42 ms/);
});
