import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, frame, settle } from "./dom-env.js";
import { ChatController } from "../src/app/chat.js";
import { HistoryController } from "../src/app/history.js";
import { MessageList } from "../src/components/chat/MessageList.js";
import { Sidebar } from "../src/components/chat/Sidebar.js";
import { createMarkdown } from "../src/lib/markdown.js";
import { describe } from "../src/lib/describe.js";
import { Session } from "../src/lib/session.js";
import { ApiError, NetworkError, StreamError } from "../src/lib/errors.js";

const win = installDom();
const md = createMarkdown(win);
const $ = (sel) => document.querySelector(sel);
let session;
let api;
let chat;
let history;
let log;

/** api.chat that the test drives: each call waits until the test ends it. */
function fakeApi() {
  return {
    calls: [],
    cancelled: [],
    conversations: [{ id: "c1", title: "Bread" }],
    chat(req, handlers) {
      let end;
      let fail;
      const done = new Promise((resolve, reject) => {
        end = resolve;
        fail = reject;
      });
      const call = { req, handlers, end, fail };
      req.signal.addEventListener("abort", () => fail(new NetworkError("aborted")));
      this.calls.push(call);
      return done;
    },
    async cancel(id) {
      this.cancelled.push(id);
    },
    async listConversations() {
      return { conversations: this.conversations, next_before: null };
    },
    async getConversation(id) {
      if (id === "gone") throw new ApiError(404, "not_found", "That conversation does not exist.");
      return { id, messages: [{ id: "m1", role: "user", content: "from the server" }] };
    },
  };
}

beforeEach(() => {
  fresh('<aside id="sidebar"></aside><div id="messages"><button id="jump-latest" hidden></button></div>');
  session = new Session({ device: { deviceId: "d" }, apiOrigin: "http://127.0.0.1:8765", view: "chat" });
  api = fakeApi();
  log = [];
  const messages = new MessageList($("#messages"), md, $("#jump-latest"));
  const report = (err, context, opts) => (log.push(["report", err.name]), describe(err, { context, ...opts }).text);
  const sidebar = new Sidebar($("#sidebar"), {}, session);
  history = new HistoryController({
    api, session, sidebar, messages, report,
    stopStream: () => chat.stop(), closeDrawer: () => log.push(["closeDrawer"]), focusInput: () => log.push(["focus"]),
    confirm: async () => true, download: (blob, name) => log.push(["download", name]),
  });
  chat = new ChatController({
    api, session, messages, report,
    refreshHistory: () => (log.push(["refresh"]), history.load()),
    reloadWhenBack: (id) => (log.push(["reloadWhenBack", id]), history.reloadWhenBack(id)),
    recheck: () => log.push(["recheck"]),
  });
});

const shown = () => [...document.querySelectorAll(".message")].map((m) => [m.dataset.role, m.dataset.status]);
const notice = (role) => document.querySelector(`.message[data-role="${role}"] .message-notice`).textContent;

test("a reply streams into a new conversation, which then is open and listed", async () => {
  assert.equal(chat.send("Hello"), true);
  assert.ok(session.state.stream);
  assert.equal(chat.send("again"), false); // one reply at a time
  const [call] = api.calls;
  assert.equal(call.req.conversationId, null);
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" });
  call.handlers.onToken({ text: "Hi " });
  call.handlers.onToken({ text: "there" });
  await frame();
  assert.equal(document.querySelector('.message[data-id="a1"] .message-body').textContent.trim(), "Hi there");
  assert.deepEqual(shown(), [["user", "complete"], ["assistant", "streaming"]]);
  call.handlers.onDone({ finish_reason: "stop" });
  call.end();
  await settle();
  assert.deepEqual(shown(), [["user", "complete"], ["assistant", "complete"]]);
  assert.equal(session.state.conversationId, "c1");
  assert.equal(session.state.stream, null);
  assert.ok(document.querySelector('.conversation-item[data-id="c1"].active'));
  assert.deepEqual(log.filter(([k]) => k === "refresh").length, 1);
});

test("nothing reached the model: the message stays with the reason and a Retry", async () => {
  chat.send("Are you there?");
  api.calls[0].fail(new ApiError(503, "model_error", "model.bin is not a GGUF file"));
  await settle();
  assert.deepEqual(shown(), [["user", "failed"]]);
  assert.match(notice("user"), /not a GGUF file/);
  document.querySelector(".retry-button").click();
  assert.equal(api.calls.length, 2);
  assert.deepEqual(shown(), [["user", "sending"], ["assistant", "streaming"]]);
});

test("stopped before the server answered: said so, no request to cancel", async () => {
  chat.send("Long story please");
  await chat.stop();
  await settle();
  assert.deepEqual(shown(), [["user", "failed"]]);
  assert.match(notice("user"), /^Stopped before the server answered\./);
  assert.deepEqual(api.cancelled, []);
  assert.equal(session.state.stream, null);
});

test("stopped mid-reply: the server is asked to cancel, the partial reply is kept as stopped", async () => {
  chat.send("Long story please");
  const [call] = api.calls;
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" });
  call.handlers.onToken({ text: "Once upon" });
  await chat.stop();
  await settle();
  assert.deepEqual(api.cancelled, ["a1"]);
  assert.deepEqual(shown(), [["user", "complete"], ["assistant", "cancelled"]]);
});

test("the connection dropped mid-reply and the reply is gone: interrupted, reloaded when the server is back", async () => {
  api.attach = async () => {
    throw new ApiError(404, "not_found", "There is no reply with that id.");
  };
  chat.send("Hello");
  const [call] = api.calls;
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" });
  call.fail(new NetworkError("interrupted"));
  await settle();
  assert.deepEqual(shown(), [["user", "complete"], ["assistant", "interrupted"]]);
  assert.deepEqual(log.filter(([k]) => k === "reloadWhenBack" || k === "recheck"), [["reloadWhenBack", "c1"], ["recheck"]]);
  history.onReady();
  await settle();
  assert.equal(document.querySelector(".message .message-body").textContent, "from the server");
});

test("the model failed mid-reply: the reply says why", async () => {
  chat.send("Hello");
  const [call] = api.calls;
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" });
  call.handlers.onError(new StreamError({ message: "out of memory" }));
  call.end();
  await settle();
  assert.deepEqual(shown(), [["user", "complete"], ["assistant", "error"]]);
  assert.equal(notice("assistant"), "The model stopped with an error: out of memory");
});

test("a regenerate that never reached the model says why on the reply; a later event of it changes nothing", async () => {
  assert.equal(chat.regenerate("a0"), true);
  const [call] = api.calls;
  assert.equal(call.req.regenerateOf, "a0");
  call.fail(new ApiError(503, "model_error", "model.bin is not a GGUF file"));
  await settle();
  assert.deepEqual(shown(), [["assistant", "error"]]);
  assert.match(notice("assistant"), /not a GGUF file/);
  call.handlers.onToken({ text: "late" });
  await frame();
  assert.equal(document.querySelector(".message .message-body").textContent, "");
  assert.equal(session.state.stream, null);
});

test("Stop while queued: the reply is cancelled at the server's ending, its queue notice gone", async () => {
  chat.send("Hello");
  const [call] = api.calls;
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" });
  call.handlers.onQueued({ position: 3 });
  assert.equal(document.querySelector('.message[data-role="assistant"]').dataset.queued, "3");
  const stopping = chat.stop();
  call.handlers.onDone({ finish_reason: "stop" }); // the server's ending, after the cancel
  await stopping;
  await settle();
  assert.deepEqual(api.cancelled, ["a1"]);
  assert.deepEqual(shown(), [["user", "complete"], ["assistant", "cancelled"]]);
  assert.match(notice("assistant"), /^Stopped — /);
  assert.equal(document.querySelector('.message[data-role="assistant"]').dataset.queued, undefined);
});

test("no device, no sending", () => {
  session.set({ device: null });
  assert.equal(chat.send("Hello"), false);
  assert.equal(api.calls.length, 0);
});

test("history: a new conversation stops the running reply; opening a deleted one reloads the list", async () => {
  chat.send("Hello");
  history.newConversation();
  await settle();
  assert.equal(session.state.conversationId, null);
  assert.deepEqual(shown(), []);
  await history.load();
  assert.equal(document.querySelectorAll(".conversation-item").length, 1);
  api.conversations = [];
  await history.open("gone");
  await settle();
  assert.equal($("#sidebar-message").textContent, "That conversation does not exist.");
  assert.equal(document.querySelectorAll(".conversation-item").length, 0);
});

test("history: import says what came in, or that the file is not an export", async () => {
  api.importHistory = async () => ({ imported_conversations: 1, imported_messages: 2, skipped: 0 });
  await history.importFile({ name: "x.json", text: async () => "{}" });
  assert.equal($("#sidebar-message").textContent, "Imported 1 conversations, 2 messages.");
  await history.importFile({ name: "x.txt", text: async () => "not json" });
  assert.equal($("#sidebar-message").textContent, "That file is not a privchat JSON export.");
});

test("history: clear all counts what is listed, then starts afresh", async () => {
  let asked;
  history.confirm = async (opts) => ((asked = opts), true);
  api.clearHistory = async () => ({ deleted: 1 });
  await history.load();
  await history.clear();
  assert.match(asked.text, /^Every conversation \(1\) and every message/);
  assert.equal($("#sidebar-message").textContent, "History cleared (1 conversations deleted).");
});
