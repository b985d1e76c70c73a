// Reopen where you were: the open conversation, the draft per conversation and
// the unsent messages outlive the tab; and honest waiting: the backoff cap on loopback and
// a Send that starts the backoff over. A "reload" here is a new page (session, controllers,
// components) over the same storage.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, frame, settle } from "./dom-env.js";
import { ChatController } from "../src/app/chat.js";
import { HistoryController } from "../src/app/history.js";
import { ConnectionMonitor } from "../src/app/monitor.js";
import { ConnectionStatus } from "../src/components/chat/ConnectionStatus.js";
import { InputArea } from "../src/components/chat/InputArea.js";
import { MessageList } from "../src/components/chat/MessageList.js";
import { Sidebar } from "../src/components/chat/Sidebar.js";
import { BACKOFF_LOOPBACK_MAX_MS, BACKOFF_MAX_MS, START, afterSend, backoffCap, decide } from "../src/lib/connection.js";
import { createMarkdown } from "../src/lib/markdown.js";
import { describe } from "../src/lib/describe.js";
import { PageMemory, Session } from "../src/lib/session.js";
import { ApiError, NetworkError } from "../src/lib/errors.js";
import { fakeClock } from "./fake-clock.js";

const win = installDom();
const md = createMarkdown(win);
const LOCAL = "http://127.0.0.1:8765";
const REMOTE = "https://chat-api.example.org";

/** A Storage over a Map, shared by the "tabs" of one test. */
function memoryStorage() {
  const map = new Map();
  return {
    map,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, v) => map.set(k, String(v)),
    removeItem: (k) => map.delete(k),
  };
}

/** The server as the page sees it: conversations, a switch to make it unreachable, chat calls. */
function fakeServer() {
  return {
    down: false,
    conversations: new Map([
      ["c1", [{ id: "m1", role: "user", content: "about bread" }, { id: "m2", role: "assistant", content: "Flour.", status: "complete" }]],
      ["c2", [{ id: "m3", role: "user", content: "about the sea" }, { id: "m4", role: "assistant", content: "Salt.", status: "complete" }]],
    ]),
    chats: [],
    opened: [],
    async listConversations() {
      if (this.down) throw new NetworkError("unreachable");
      return { conversations: [...this.conversations.keys()].map((id) => ({ id, title: id })), next_before: null };
    },
    async getConversation(id) {
      this.opened.push(id);
      if (this.down) throw new NetworkError("unreachable");
      if (!this.conversations.has(id)) throw new ApiError(404, "not_found", "That conversation does not exist.");
      return { id, messages: this.conversations.get(id) };
    },
    async chat(req, handlers) {
      this.chats.push(req);
      if (this.down) throw new NetworkError("unreachable");
      const id = req.conversationId || "c-new";
      handlers.onStart({ conversation_id: id, user_message_id: `u${this.chats.length}`, assistant_message_id: `a${this.chats.length}` });
      handlers.onToken({ text: "ok" });
      handlers.onDone({ finish_reason: "stop" });
    },
    async cancel() {},
  };
}

let storage;
let server;

/** One page load: the wiring ChatInterface does, over `storage`. */
function openPage({ origin = LOCAL } = {}) {
  fresh('<aside id="sidebar"></aside><div id="messages"><button id="jump-latest" hidden></button></div><div id="composer"></div>');
  const $ = (sel) => document.querySelector(sel);
  const session = new Session({ device: { deviceId: "d" }, apiOrigin: origin, view: "chat" });
  const memory = new PageMemory(storage);
  const messages = new MessageList($("#messages"), md, $("#jump-latest"));
  const report = (err, context, opts) => describe(err, { context, ...opts }).text;
  const page = { session, memory, messages, running: [] };
  page.input = new InputArea($("#composer"), { onSend: (t) => page.chat.send(t), onStop: () => {}, onDraft: (t) => page.history.saveDraft(t) }, session);
  page.history = new HistoryController({
    api: server, session, messages, report, memory,
    sidebar: new Sidebar($("#sidebar"), {}, session),
    stopStream: async () => {}, closeDrawer: () => {}, focusInput: () => {}, confirm: async () => true,
    setDraft: (t) => page.input.setText(t),
    retrySend: (t, view, id) => page.chat.retry(t, view, id),
    onRunningReply: (id, conv) => page.running.push([id, conv]),
  });
  page.chat = new ChatController({
    api: server, session, messages, report,
    refreshHistory: () => page.history.load(), reloadWhenBack: (id) => page.history.reloadWhenBack(id), recheck: () => {},
    keepUnsent: (t, view, sentence) => page.history.holdUnsent(t, view, sentence), dropUnsent: (id) => page.history.dropUnsent(id),
  });
  page.history.restore();
  return page;
}

const texts = () => [...document.querySelectorAll(".message")].map((m) => [m.dataset.status, m.querySelector(".message-body").textContent.trim()]);
const box = () => document.querySelector("#message-input");
function type(text) {
  box().value = text;
  box().dispatchEvent(new window.Event("input", { bubbles: true }));
}

beforeEach(() => {
  storage = memoryStorage();
  server = fakeServer();
});

// ------------------------------------------------------------------ reopen

test("reopen: a reload goes back to the conversation that was open, loaded from the server", async () => {
  let page = openPage();
  assert.equal(page.session.state.conversationId, null);
  assert.equal(await page.history.open("c2"), "opened");
  page = openPage(); // reload
  assert.equal(page.session.state.conversationId, "c2"); // at once, before the server answers
  page.history.onReady();
  assert.equal(await page.history.reopening, "opened");
  assert.deepEqual(texts().map((t) => t[1]), ["about the sea", "Salt."]);
  assert.equal(document.querySelector('.conversation-item[data-id="c2"] .conversation-open').getAttribute("aria-current"), "true");
  // Remembered per API origin: another server's page starts with a new conversation.
  const other = openPage({ origin: REMOTE });
  assert.equal(other.session.state.conversationId, null);
});

test("reopen: a conversation that is gone falls back quietly to a new one", async () => {
  let page = openPage();
  await page.history.open("c1");
  server.conversations.delete("c1");
  page = openPage();
  page.history.onReady();
  assert.equal(await page.history.reopening, "gone");
  assert.equal(page.session.state.conversationId, null);
  assert.equal(document.querySelector("#sidebar-message").textContent, ""); // nothing said
  assert.equal(page.memory.openConversation(LOCAL), null);
  assert.equal(openPage().session.state.conversationId, null);
});

test("reopen: the server is down at first; the conversation loads when it is back", async () => {
  let page = openPage();
  await page.history.open("c1");
  server.down = true;
  page = openPage();
  page.history.onReady();
  assert.equal(await page.history.reopening, "failed");
  assert.equal(page.session.state.conversationId, "c1"); // still where the owner was
  server.down = false;
  page.history.onReady();
  assert.equal(await page.history.reopening, "opened");
  assert.deepEqual(texts().map((t) => t[1]), ["about bread", "Flour."]);
});

test("a reply still being written when its conversation opens is handed to onRunningReply", async () => {
  server.conversations.set("c3", [{ id: "m5", role: "user", content: "long" }, { id: "m6", role: "assistant", content: "Once", status: "streaming" }]);
  let page = openPage();
  await page.history.open("c3");
  assert.deepEqual(page.running, [["m6", "c3"]]);
  page = openPage();
  page.history.onReady();
  await page.history.reopening;
  assert.deepEqual(page.running, [["m6", "c3"]]);
  await page.history.open("c1"); // a finished conversation: no hook
  assert.deepEqual(page.running, [["m6", "c3"]]);
});

// ------------------------------------------------------------------ drafts

test("drafts: kept per conversation across switches and reloads, cleared on send", async () => {
  let page = openPage();
  type("a new thought");
  await page.history.open("c1");
  assert.equal(box().value, "");
  type("draft for bread");
  await page.history.open("c2");
  type("draft for the sea");
  await page.history.open("c1");
  assert.equal(box().value, "draft for bread");
  page.history.newConversation();
  assert.equal(box().value, "a new thought");
  await page.history.open("c2");

  page = openPage(); // reload: c2 and its draft
  assert.equal(page.session.state.conversationId, "c2");
  assert.equal(box().value, "draft for the sea");

  await page.input.submit(); // sent: the draft is gone
  await settle();
  assert.equal(server.chats.at(-1).message, "draft for the sea");
  assert.equal(box().value, "");
  assert.equal(page.memory.draft(LOCAL, "c2"), "");
  page = openPage();
  assert.equal(box().value, "");
  assert.equal(page.memory.draft(LOCAL, "c1"), "draft for bread"); // the others stay
});

test("drafts: a new conversation's first Send gives it an id; what is typed next stays in the box", async () => {
  let page = openPage();
  type("first message");
  let release;
  server.chat = async function chat(req, handlers) {
    this.chats.push(req);
    await new Promise((r) => (release = r));
    handlers.onStart({ conversation_id: "c9", user_message_id: "u", assistant_message_id: "a" });
    handlers.onDone({ finish_reason: "stop" });
  };
  await page.input.submit();
  type("the next one");
  release();
  await settle();
  assert.equal(page.session.state.conversationId, "c9");
  assert.equal(box().value, "the next one");
  assert.equal(page.memory.draft(LOCAL, "c9"), "the next one");
  assert.equal(page.memory.draft(LOCAL, null), "");
});

test("page memory: blocked or broken storage loses the memory, not the page", () => {
  const broken = { getItem: () => { throw new Error("denied"); }, setItem: () => { throw new Error("full"); }, removeItem: () => {} };
  for (const store of [null, broken]) {
    const m = new PageMemory(store);
    m.setDraft(LOCAL, "c1", "x");
    m.setOpenConversation(LOCAL, "c1");
    assert.equal(m.draft(LOCAL, "c1"), "");
    assert.equal(m.openConversation(LOCAL), null);
    assert.deepEqual(m.unsent(LOCAL), []);
  }
  storage.setItem(`privchat.unsent.${LOCAL}`, "{not json");
  assert.deepEqual(new PageMemory(storage).unsent(LOCAL), []);
});

// ------------------------------------------------------------------ unsent messages

test("unsent: a message that could not be sent stays, with Retry, when the conversation is reloaded", async () => {
  let page = openPage();
  await page.history.open("c1");
  server.down = true;
  type("are you there?");
  await page.input.submit();
  await settle();
  assert.deepEqual(texts().at(-1), ["failed", "are you there?"]);
  assert.equal(box().value, "");

  // The server comes back and the conversation is reloaded from it: the message is still there.
  server.down = false;
  await page.history.open("c1", { quiet: true });
  assert.deepEqual(texts(), [["complete", "about bread"], ["complete", "Flour."], ["failed", "are you there?"]]);
  assert.ok(document.querySelector('.message[data-status="failed"] .retry-button'));

  // A reload of the tab, the server down: shown at once, before anything is loaded.
  server.down = true;
  page = openPage();
  assert.deepEqual(texts(), [["failed", "are you there?"]]);
  server.down = false;
  page.history.onReady();
  await page.history.reopening;
  assert.deepEqual(texts().map((t) => t[0]), ["complete", "complete", "failed"]);
  // Only in its own conversation.
  await page.history.open("c2");
  assert.equal(document.querySelectorAll('.message[data-status="failed"]').length, 0);
  await page.history.open("c1");

  // Retry sends it, and it is not kept any more.
  document.querySelector(".retry-button").click();
  await settle();
  assert.equal(server.chats.at(-1).message, "are you there?");
  assert.equal(server.chats.at(-1).conversationId, "c1");
  await frame(); // streamed text is drawn once per frame
  assert.deepEqual(texts().slice(-2), [["complete", "are you there?"], ["complete", "ok"]]);
  assert.deepEqual(page.memory.unsent(LOCAL), []);
  openPage();
  assert.equal(document.querySelectorAll('.message[data-status="failed"]').length, 0);
});

test("unsent: Retry in the same tab drops the kept copy; a second failure keeps it once", async () => {
  const page = openPage();
  await page.history.open("c2");
  server.down = true;
  type("one");
  await page.input.submit();
  await settle();
  assert.equal(page.memory.unsent(LOCAL, "c2").length, 1);
  document.querySelector(".retry-button").click(); // still down
  await settle();
  assert.deepEqual(page.memory.unsent(LOCAL, "c2").map((m) => m.text), ["one"]);
  assert.equal(document.querySelectorAll('.message[data-status="failed"]').length, 1);
  server.down = false;
  document.querySelector(".retry-button").click();
  await settle();
  assert.deepEqual(page.memory.unsent(LOCAL), []);
});

test("unsent: in a new conversation they stay on the new page, and follow it when it gets an id", async () => {
  let page = openPage();
  server.down = true;
  type("lost?");
  await page.input.submit();
  await settle();
  page = openPage();
  assert.deepEqual(texts(), [["failed", "lost?"]]);
  server.down = false;
  type("second");
  await page.input.submit();
  await settle();
  assert.equal(page.session.state.conversationId, "c-new");
  assert.deepEqual(page.memory.unsent(LOCAL, "c-new").map((m) => m.text), ["lost?"]);
});

test("unsent: the messages of a conversation that is gone move to the new conversation", async () => {
  let page = openPage();
  await page.history.open("c1");
  server.down = true;
  type("kept");
  await page.input.submit();
  await settle();
  server.down = false;
  server.conversations.delete("c1");
  page = openPage();
  page.history.onReady();
  assert.equal(await page.history.reopening, "gone");
  assert.deepEqual(texts(), [["failed", "kept"]]);
  assert.equal(page.session.state.conversationId, null);
});

// ------------------------------------------------------------------ honest waiting

test("backoff: capped at 1.5 s for a server on this machine, 30 s for a tunnelled one", () => {
  assert.equal(backoffCap(LOCAL), BACKOFF_LOOPBACK_MAX_MS);
  assert.equal(backoffCap("http://localhost:8765"), BACKOFF_LOOPBACK_MAX_MS);
  assert.equal(backoffCap("http://[::1]:8765"), BACKOFF_LOOPBACK_MAX_MS);
  assert.equal(backoffCap(REMOTE), BACKOFF_MAX_MS);
  const delays = (origin) => {
    let mem = START;
    const out = [];
    for (let i = 0; i < 8; i++) {
      const d = decide(mem, { error: new NetworkError("unreachable"), apiOrigin: origin });
      out.push(d.delayMs);
      mem = d.memory;
    }
    return out;
  };
  assert.deepEqual(delays(LOCAL), [1000, 1500, 1500, 1500, 1500, 1500, 1500, 1500]);
  assert.deepEqual(delays(REMOTE), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  // A server that answers and asks for a wait (Retry-After) is still obeyed.
  const busy = decide(START, { error: new ApiError(503, "busy", "busy", { retryAfter: 5 }), apiOrigin: LOCAL });
  assert.equal(busy.delayMs, 5000);
  // A model loading on this machine is asked about as often.
  const loading = { status: "ok", model: { state: "loading", name: "smol" } };
  assert.equal(decide(START, { health: loading, me: { status: "active" }, apiOrigin: LOCAL }).delayMs, BACKOFF_LOOPBACK_MAX_MS);
  assert.equal(decide(START, { health: loading, me: { status: "active" }, apiOrigin: REMOTE }).delayMs, 3000);
});

test("afterSend: the backoff starts over; a check at once unless the server was fine", () => {
  const down = { state: "unreachable", backoffMs: 16000, wasReady: true };
  assert.deepEqual(afterSend(down), { memory: { ...down, backoffMs: 0 }, check: true });
  const fine = { state: "ready", backoffMs: 0, wasReady: true };
  assert.deepEqual(afterSend(fine), { memory: fine, check: false });
});


function monitorPage(origin) {
  fresh(`<div id="status"><span class="status-text"></span></div><span id="status-note"></span><div id="status-actions"></div>`);
  const clock = fakeClock(0);
  const api = {
    up: true,
    calls: [],
    async health() {
      this.calls.push(clock.now());
      if (!this.up) throw new NetworkError("unreachable");
      return { model: { state: "ready", name: "smol" } };
    },
    async followServerKey() {
      return null;
    },
    async whoAmI() {
      return { status: "active" };
    },
  };
  const session = new Session({ apiOrigin: origin, device: { deviceId: "d" }, view: "chat" });
  const status = new ConnectionStatus(document.querySelector("#status"), document.querySelector("#status-actions"));
  const monitor = new ConnectionMonitor({ api, session, status, timers: clock, now: clock.now, online: () => true });
  return { clock, api, session, monitor, state: () => document.querySelector("#status").dataset.state };
}

test("a server on this machine that comes back is noticed within 2 s, however long it was down", async () => {
  for (const downFor of [5_000, 60_000, 61_234]) {
    const { clock, api, monitor, state } = monitorPage(LOCAL);
    await monitor.checkNow();
    assert.equal(state(), "ready");
    api.up = false;
    await monitor.checkNow();
    await clock.advanceSettling(downFor, monitor);
    assert.notEqual(state(), "ready");
    api.up = true;
    const back = clock.now();
    await clock.advanceSettling(2_000, monitor);
    assert.equal(state(), "ready", `down for ${downFor} ms`);
    assert.ok(api.calls.at(-1) - back <= 1_500, `noticed ${api.calls.at(-1) - back} ms after`);
  }
  // A tunnelled server: the backoff has grown to 30 s.
  const { clock, api, monitor, state } = monitorPage(REMOTE);
  api.up = false;
  await monitor.checkNow();
  await clock.advanceSettling(110_000, monitor); // checks at 61 s, 91 s, next at 121 s
  api.up = true;
  await clock.advanceSettling(2_000, monitor);
  assert.notEqual(state(), "ready");
});

test("a Send starts any backoff over and checks at once", async () => {
  const { clock, api, session, monitor, state } = monitorPage(REMOTE);
  api.up = false;
  await monitor.checkNow();
  await clock.advanceSettling(60_000, monitor);
  assert.equal(monitor.memory.backoffMs, 30_000);
  const before = api.calls.length;
  api.up = true;
  session.set({ stream: { ctrl: new AbortController(), assistantId: null, started: false, stopped: false } });
  assert.equal(api.calls.length, before + 1); // at once, no timer needed
  await monitor.running;
  assert.equal(state(), "ready");
  assert.equal(monitor.memory.backoffMs, 0);
  // Still down: the next retry is 1 s away, not 30 s.
  session.set({ stream: null });
  api.up = false;
  await monitor.checkNow();
  await clock.advanceSettling(60_000, monitor);
  session.set({ stream: { ctrl: new AbortController() } });
  await monitor.running;
  assert.equal(monitor.memory.backoffMs, 1_000);
  assert.equal(document.querySelector("#status-note").textContent, "Retrying in 1s…");
  // The server was fine: a Send costs no extra check.
  session.set({ stream: null });
  api.up = true;
  await monitor.checkNow(true);
  const calls = api.calls.length;
  session.set({ stream: { ctrl: new AbortController() } });
  assert.equal(api.calls.length, calls);
});

test("forgetting the device clears what was kept for its API: open conversation, drafts, unsent text", () => {
  const store = new Map();
  const storage = { getItem: (k) => (store.has(k) ? store.get(k) : null), setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
  const memory = new PageMemory(storage);
  const origin = "https://chat-api.example.com";
  memory.setOpenConversation(origin, "c1");
  memory.setDraft(origin, "c1", "half a thought");
  memory.keepUnsent(origin, "c1", "a message the server never got");
  memory.setDraft("http://127.0.0.1:8765", "c2", "another API's draft");
  assert.ok([...store.keys()].some((k) => k.endsWith(origin)));
  memory.forget(origin);
  assert.equal([...store.keys()].filter((k) => k.endsWith(origin)).length, 0);
  assert.equal(memory.draft("http://127.0.0.1:8765", "c2"), "another API's draft"); // only this API's
});
