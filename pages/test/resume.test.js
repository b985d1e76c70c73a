import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, frame, settle } from "./dom-env.js";
import { ChatController } from "../src/app/chat.js";
import { MessageList } from "../src/components/chat/MessageList.js";
import { createMarkdown } from "../src/lib/markdown.js";
import { Session } from "../src/lib/session.js";
import { E2EError, NetworkError } from "../src/lib/errors.js";
import { EventCursor, retryDelay, seqOf } from "../src/lib/resume.js";

const win = installDom();
const md = createMarkdown(win);
let session;
let api;
let chat;
let log;

/** A stream the test drives: chat() and attach() calls, each ended or failed by the test. */
function fakeApi() {
  const pending = (kind, req, handlers) => {
    let end;
    let fail;
    const done = new Promise((resolve, reject) => {
      end = resolve;
      fail = reject;
    });
    const call = { kind, req, handlers, end, fail };
    req.signal.addEventListener("abort", () => fail(new NetworkError("aborted")));
    api.calls.push(call);
    return done;
  };
  return {
    calls: [],
    cancelled: [],
    chat: (req, handlers) => pending("chat", req, handlers),
    attach: (req, handlers) => pending("attach", req, handlers),
    async cancel(id) {
      this.cancelled.push(id);
    },
  };
}

beforeEach(() => {
  fresh('<div id="messages"><button id="jump-latest" hidden></button></div>');
  session = new Session({ device: { deviceId: "d" }, apiOrigin: "http://127.0.0.1:8765", view: "chat" });
  api = fakeApi();
  log = [];
  const messages = new MessageList(document.querySelector("#messages"), md, document.querySelector("#jump-latest"));
  chat = new ChatController({
    api, session, messages, report: (err) => err.message,
    refreshHistory: () => log.push("refresh"), reloadWhenBack: (id) => log.push(["reloadWhenBack", id]), recheck: () => log.push("recheck"),
  });
});

const reply = () => [...document.querySelectorAll('.message[data-role="assistant"]')].pop();
const text = () => reply().querySelector(".message-body").textContent;

test("ids: the number after the last colon; the cursor takes each number once, in order", () => {
  assert.equal(seqOf("a:b:7"), 7);
  assert.equal(seqOf(undefined), null);
  assert.equal(seqOf("a:x"), null);
  const cursor = new EventCursor();
  assert.equal(cursor.take("r:0"), true);
  assert.equal(cursor.take("r:1"), true);
  assert.equal(cursor.take("r:1"), false);
  assert.equal(cursor.take("r:0"), false);
  assert.equal(cursor.id, "r:1");
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map(retryDelay), [0, 1000, 2000, 4000, 8000, 15000, 15000]);
});

test("a drop mid-reply reattaches from the last event and merges without a token twice", async () => {
  chat.send("Hello");
  const [first] = api.calls;
  first.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" }, "a1:0");
  first.handlers.onToken({ text: "Once " }, "a1:1");
  first.handlers.onToken({ text: "upon " }, "a1:2");
  first.fail(new NetworkError("interrupted"));
  await settle();
  const second = api.calls[1];
  assert.equal(second.kind, "attach");
  assert.deepEqual([second.req.assistantId, second.req.lastEventId], ["a1", "a1:2"]);
  assert.equal(reply().dataset.status, "streaming");
  assert.match(reply().querySelector(".message-notice").textContent, /picking the reply up again/);
  second.handlers.onOpen();
  second.handlers.onToken({ text: "upon " }, "a1:2"); // a seam read twice: ignored
  second.handlers.onToken({ text: "a time" }, "a1:3");
  second.handlers.onDone({ finish_reason: "stop", usage: { completion_tokens: 3 } }, "a1:4");
  second.end();
  await settle();
  await frame();
  assert.equal(text().trim(), "Once upon a time");
  assert.equal(reply().dataset.status, "complete");
  assert.equal(session.state.stream, null);
  assert.ok(!log.some((e) => Array.isArray(e) && e[0] === "reloadWhenBack"));
});

test("a failed reattach waits, and `online` tries again at once; Stop while waiting cancels", async () => {
  chat.send("Hello");
  const [first] = api.calls;
  first.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" }, "a1:0");
  first.fail(new NetworkError("interrupted"));
  await settle();
  api.calls[1].fail(new NetworkError("offline"));
  await settle();
  assert.equal(api.calls.length, 2); // waiting 1 s
  window.dispatchEvent(new window.Event("online"));
  await settle();
  assert.equal(api.calls.length, 3);
  assert.equal(api.calls[2].req.lastEventId, "a1:0");
  api.calls[2].fail(new NetworkError("offline"));
  await settle();
  await chat.stop();
  await settle();
  assert.deepEqual(api.cancelled, ["a1"]);
  assert.equal(reply().dataset.status, "cancelled");
  assert.equal(session.state.stream, null);
});

test("queued: the reply says it waits and its place, until the first token", async () => {
  chat.send("Hello");
  const [call] = api.calls;
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" }, "a1:0");
  call.handlers.onQueued({ position: 2 }, "a1:1");
  assert.equal(reply().querySelector(".message-notice").textContent,
    "Waiting for the model, another reply is being written. Your place in the queue: 2.");
  assert.equal(reply().dataset.queued, "2");
  call.handlers.onToken({ text: "Hi" }, "a1:2");
  assert.equal(reply().querySelector(".message-notice").hidden, true);
  call.handlers.onDone({ finish_reason: "stop", timings: { ttft_ms: 5 } }, "a1:3");
  call.end();
  await settle();
  // Time to first token is the server's figure, the one it stores: a reload shows the same .
  assert.match(reply().querySelector(".message-meta").textContent, /first token 5 ms/);
});

test("loading: after its wait in the queue the reply says the model it waits for loads, until the first token", async () => {
  chat.messages.modelLabel = (name) => (name === "big" ? "Big model" : name); // the models store's labels
  chat.send("Hello");
  const [call] = api.calls;
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1", model: "big" }, "a1:0");
  call.handlers.onQueued({ position: 1 }, "a1:1");
  call.handlers.onLoading({ model: "big" }, "a1:2");
  assert.equal(reply().querySelector(".message-notice").textContent,
    "Loading Big model — the first reply after a switch waits for it.");
  assert.equal(reply().dataset.queued, undefined, "no longer queued");
  call.handlers.onLoading({ model: "big" }, "a1:2"); // read twice across a reattach seam: ignored
  call.handlers.onToken({ text: "Hi" }, "a1:3");
  assert.equal(reply().querySelector(".message-notice").hidden, true);
  call.handlers.onLoading({ model: "big" }, "a1:4"); // never after the first token
  assert.equal(reply().querySelector(".message-notice").hidden, true);
  call.handlers.onDone({ finish_reason: "stop" }, "a1:5");
  call.end();
  await settle();
  assert.match(reply().querySelector(".message-meta").textContent, /^Big model/, "the reply names its model by its label");
});

test("a drop while queued: picking the reply up again, then queued again when the stream opens, until the first token", async () => {
  chat.send("Hello");
  const [first] = api.calls;
  first.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" }, "a1:0");
  first.handlers.onQueued({ position: 1 }, "a1:1");
  first.fail(new NetworkError("interrupted"));
  await settle();
  assert.equal(reply().querySelector(".message-notice").textContent, "Connection lost — picking the reply up again…");
  assert.equal(reply().dataset.queued, undefined);
  const second = api.calls[1];
  assert.equal(second.req.lastEventId, "a1:1");
  second.handlers.onOpen(); // the replay starts after a1:1: the queued event is not said again
  assert.equal(reply().querySelector(".message-notice").textContent,
    "Waiting for the model, another reply is being written. Your place in the queue: 1.");
  assert.equal(reply().dataset.queued, "1");
  second.handlers.onToken({ text: "Hi" }, "a1:2");
  assert.equal(reply().querySelector(".message-notice").hidden, true);
  second.handlers.onQueued({ position: 1 }, "a1:3"); // never after the first token
  assert.equal(reply().querySelector(".message-notice").hidden, true);
  second.handlers.onDone({ finish_reason: "stop" }, "a1:4");
  second.end();
  await settle();
  assert.equal(reply().dataset.status, "complete");
  assert.equal(chat.replies.record.phase, "complete");
});

test("reattach to a reply on screen draws it in its own view, from its first event", async () => {
  chat.messages.show([{ id: "u9", role: "user", content: "long" }, { id: "a9", role: "assistant", content: "Once", status: "streaming" }]);
  const done = chat.reattach("a9", "c9");
  await settle();
  const [call] = api.calls;
  call.handlers.onOpen();
  call.handlers.onStart({ conversation_id: "c9", user_message_id: "u9", assistant_message_id: "a9" }, "a9:0");
  call.handlers.onToken({ text: "Once upon a time" }, "a9:1");
  call.handlers.onDone({ finish_reason: "stop" }, "a9:2");
  call.end();
  await done;
  await frame();
  assert.deepEqual([...document.querySelectorAll(".message")].map((m) => [m.dataset.id, m.dataset.status]), [["u9", "complete"], ["a9", "complete"]]);
  assert.equal(text().trim(), "Once upon a time");
});

test("the server stopped mid-reply (done: interrupted): the reply says so and is reloaded when the server is back", async () => {
  chat.send("Hello");
  const [call] = api.calls;
  call.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" }, "a1:0");
  call.handlers.onToken({ text: "part" }, "a1:1");
  call.handlers.onDone({ finish_reason: "interrupted" }, "a1:2");
  call.handlers.onDone({ finish_reason: "interrupted" }, "a1:2"); // read twice: said once
  call.end();
  await settle();
  assert.equal(reply().dataset.status, "interrupted");
  assert.match(reply().querySelector(".message-notice").textContent, /^Interrupted — /);
  assert.deepEqual(log.filter((e) => Array.isArray(e)), [["reloadWhenBack", "c1"]]);
  await new Promise((resolve) => setTimeout(resolve, 350));
  assert.equal(log.filter((e) => e === "recheck").length, 1);
});

test("reattach to a reply this page did not start shows it from its first event", async () => {
  const done = chat.reattach("a9", null);
  await settle();
  const [call] = api.calls;
  assert.deepEqual([call.kind, call.req.assistantId, call.req.lastEventId], ["attach", "a9", null]);
  call.handlers.onStart({ conversation_id: "c9", user_message_id: "u9", assistant_message_id: "a9" }, "a9:0");
  call.handlers.onToken({ text: "Hello" }, "a9:1");
  call.handlers.onDone({ finish_reason: "stop" }, "a9:2");
  call.end();
  await done;
  await frame();
  assert.equal(text().trim(), "Hello");
  assert.equal(session.state.conversationId, "c9");
});

test("a sealed stream cut (e2e_truncated) or broken (e2e_event_invalid) is picked up again from the last event that opened", async () => {
  chat.send("Hello");
  const [first] = api.calls;
  first.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" }, "a1:0");
  first.handlers.onToken({ text: "Once " }, "a1:1");
  first.fail(new E2EError("e2e_truncated"));
  await settle();
  assert.equal(api.calls[1].kind, "attach");
  assert.equal(api.calls[1].req.lastEventId, "a1:1");
  api.calls[1].fail(new E2EError("e2e_event_invalid"));
  await settle();
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the second try waits its backoff
  await settle();
  assert.equal(api.calls.length, 3);
  assert.equal(api.calls[2].req.lastEventId, "a1:1");
  api.calls[2].handlers.onToken({ text: "upon a time" }, "a1:2");
  api.calls[2].handlers.onDone({ finish_reason: "stop" }, "a1:3");
  api.calls[2].end();
  await settle();
  await frame();
  assert.equal(text().trim(), "Once upon a time");
  assert.equal(reply().dataset.status, "complete");
});

test("a sealed stream that keeps failing to open shows the end-to-end sentence, not a silent short reply", async () => {
  chat.send("Hello");
  const [first] = api.calls;
  first.handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "a1" }, "a1:0");
  first.fail(new E2EError("e2e_truncated"));
  await settle();
  api.calls[1].fail(new E2EError("e2e_unsealed", "plain event"));
  await settle();
  assert.equal(reply().dataset.status, "error");
  assert.match(reply().textContent, /e2e_unsealed/);
});

test("EventSequence: a stream follows on from its cursor, number by number, of one reply", async () => {
  const { EventSequence } = await import("../src/lib/resume.js");
  const run = (after, evs) => {
    const seq = new EventSequence({ after });
    for (const [id, event = "token"] of evs) seq.check({ id, event });
    return seq;
  };
  assert.equal(run(null, [["r:0", "start"], ["r:1"], ["r:2", "done"]]).next, 3);
  assert.equal(run("r:4", [["r:5"], ["r:6", "done"]]).next, 7);
  run("", [["r:0", "start"]]); // an empty cursor is "from the start"
  run("r:4", [[null, "snapshot"], [null, "done"]]); // a finished reply's whole text
  run("r:4", [["r:5"], [null, "error"]]); // the server's own ending (a revoked device)
  for (const [after, evs] of [
    [null, [["r:1"]]], // the start is missing
    ["r:4", [["r:6"]]], // a gap
    ["r:4", [["r:4"]]], // shifted back
    ["r:4", [["r:5"], ["r:5"]]], // a repeat
    ["r:4", [["q:5"]]], // another reply's
    [null, [["r:0", "start"], ["q:1"]]],
    ["r:4", [[null, "token"]]], // a token without a number
    ["r:4", [["r:5"], [null, "snapshot"]]], // a snapshot after events
    ["r:4", [[null, "snapshot"], ["r:5"]]], // numbers after the whole text
    ["r:4", [["nonsense"]]],
  ]) {
    assert.throws(() => run(after, evs), (e) => e.code === "e2e_event_invalid" && e.sequence === true, JSON.stringify([after, evs]));
  }
});
