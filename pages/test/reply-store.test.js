import { test } from "node:test";
import assert from "node:assert/strict";
import { EVENT_NAMES, PHASES, ReplyStore, isOver, newReply, replyAfter } from "../src/lib/reply-store.js";

const START = { assistant_message_id: "a1", conversation_id: "c1", user_message_id: "u1", model: "big" };

/** The record after a sequence of [event, data] from a reply just sent (or attached to). */
function after(events, fields = {}) {
  let record = newReply(fields);
  for (const [event, data] of events) record = replyAfter(record, event, data);
  return record;
}

test("a reply is sent, taken, written and complete; the figures of its done are kept", () => {
  assert.equal(newReply().phase, "sending");
  const taken = after([["start", START]]);
  assert.deepEqual([taken.phase, taken.assistantId, taken.conversationId, taken.model, taken.started], ["streaming", "a1", "c1", "big", true]);
  const done = after([["start", START], ["token", { text: "Hi " }], ["token", { text: "there" }],
    ["done", { finish_reason: "stop", usage: { completion_tokens: 2 } }]]);
  assert.equal(done.phase, "complete");
  assert.equal(done.text, "Hi there");
  assert.deepEqual(done.meta, { finish_reason: "stop", usage: { completion_tokens: 2 } });
  assert.equal(isOver(done), true);
});

test("queued: its place until the first token, which clears it; a queued event after the first token is stale", () => {
  const queued = after([["start", START], ["queued", { position: 2 }]]);
  assert.deepEqual([queued.phase, queued.queuePosition], ["queued", 2]);
  assert.equal(after([["start", START], ["queued", {}]]).queuePosition, 0, "a place not said");
  const writing = after([["start", START], ["queued", { position: 2 }], ["token", { text: "Hi" }]]);
  assert.deepEqual([writing.phase, writing.queuePosition, writing.writing], ["streaming", null, true]);
  assert.equal(replyAfter(writing, "queued", { position: 1 }), writing, "ignored: the same record");
  assert.equal(replyAfter(writing, "loading", { model: "big" }), writing, "ignored: the same record");
});

test("loading: after the queue, the model it waits for; a token ends it", () => {
  const loading = after([["start", START], ["queued", { position: 1 }], ["loading", { model: "big" }]]);
  assert.deepEqual([loading.phase, loading.queuePosition, loading.loadingModel], ["loading", null, "big"]);
  assert.equal(after([["start", START], ["loading", {}]]).loadingModel, "", "a model not named");
  const writing = replyAfter(loading, "token", { text: "x" });
  assert.deepEqual([writing.phase, writing.loadingModel], ["streaming", null]);
});

test("reconnecting: a lost connection while queued comes back queued (the replay does not repeat the event)", () => {
  const lost = after([["start", START], ["queued", { position: 3 }], ["lost"]]);
  assert.deepEqual([lost.phase, lost.queuePosition], ["reconnecting", 3]);
  assert.equal(replyAfter(lost, "lost"), lost);
  assert.equal(replyAfter(lost, "open").phase, "queued");
  const writing = after([["start", START], ["token", { text: "a" }], ["lost"]]);
  assert.equal(replyAfter(writing, "open").phase, "streaming");
  // Any event proves the connection alive.
  assert.deepEqual([replyAfter(writing, "token", { text: "b" }).phase, replyAfter(writing, "token", { text: "b" }).text], ["streaming", "ab"]);
  assert.equal(replyAfter(after([["start", START]]), "open").phase, "streaming", "open while not reconnecting changes nothing");
});

test("done: its finish reason says how it ended; after Stop a plain stop reads as cancelled", () => {
  const base = [["start", START], ["token", { text: "part" }]];
  assert.equal(after([...base, ["done", { finish_reason: "interrupted" }]]).phase, "interrupted");
  assert.equal(after([...base, ["done", { finish_reason: "cancelled" }]]).phase, "cancelled");
  assert.equal(after([...base, ["done", { finish_reason: "length" }]]).phase, "complete");
  assert.equal(after([...base, ["stop"], ["done", { finish_reason: "stop" }]]).phase, "cancelled");
  const queuedThenCancelled = after([["start", START], ["queued", { position: 1 }], ["stop"], ["done", { finish_reason: "cancelled" }]]);
  assert.deepEqual([queuedThenCancelled.phase, queuedThenCancelled.queuePosition], ["cancelled", null]);
});

test("error: the sentence is kept; nothing after an end changes the reply", () => {
  const failed = after([["start", START], ["token", { text: "a" }], ["error", { sentence: "The model stopped with an error: oom" }]]);
  assert.deepEqual([failed.phase, failed.error], ["error", "The model stopped with an error: oom"]);
  for (const [event, data] of [["token", { text: "b" }], ["done", { finish_reason: "stop" }], ["error", { sentence: "x" }],
    ["queued", { position: 1 }], ["snapshot", { text: "whole" }], ["lost"], ["closed"], ["stop"]]) {
    assert.equal(replyAfter(failed, event, data), failed, event);
  }
});

test("closed without the server's ending: cancelled after Stop, interrupted otherwise", () => {
  assert.equal(after([["start", START], ["stop"], ["closed"]]).phase, "cancelled");
  assert.equal(after([["start", START], ["lost"], ["closed"]]).phase, "interrupted");
});

test("a reply attached to is taken already; a snapshot replaces its text whole; bad data changes nothing", () => {
  const attached = newReply({ assistantId: "a9", attached: true });
  assert.deepEqual([attached.phase, attached.started, attached.assistantId], ["streaming", true, "a9"]);
  const whole = after([["snapshot", { text: "stored text" }], ["done", { finish_reason: "stop" }]], { assistantId: "a9", attached: true });
  assert.deepEqual([whole.phase, whole.text], ["complete", "stored text"]);
  const r = after([["start", START]]);
  assert.equal(replyAfter(r, "token", { text: 5 }), r);
  assert.equal(replyAfter(r, "token", null), r);
  assert.equal(replyAfter(r, "snapshot", {}), r);
  assert.throws(() => replyAfter(r, "nonsense"), /no event nonsense/);
});

test("records are frozen, and an event never changes the record it is applied to", () => {
  const r = after([["start", START]]);
  assert.ok(Object.isFrozen(r));
  const next = replyAfter(r, "token", { text: "x" });
  assert.equal(r.text, "");
  assert.ok(Object.isFrozen(next));
  for (const phase of PHASES) assert.equal(typeof phase, "string");
  assert.ok(EVENT_NAMES.includes("queued") && EVENT_NAMES.includes("closed"));
});

test("the store: a new serial for each reply, an event of an older one is ignored, listeners hear every change", () => {
  const store = new ReplyStore();
  const heard = [];
  const unsubscribe = store.subscribe((record, previous) => heard.push([record && record.phase, previous && previous.phase]));
  const first = store.begin();
  store.apply(first, "start", START);
  assert.equal(store.apply(first, "queued", { position: 1 }).phase, "queued");
  store.apply(first, "token", { text: "x" });
  const before = heard.length;
  assert.equal(store.apply(first, "queued", { position: 1 }).phase, "streaming", "stale: no change");
  assert.equal(heard.length, before, "an ignored event is not told");
  const second = store.begin({ assistantId: "a2", attached: true });
  assert.notEqual(second, first);
  assert.equal(store.apply(first, "token", { text: "late" }), null, "not the current reply");
  assert.equal(store.get(first), null);
  assert.equal(store.record.text, "");
  store.drop(first); // not current: nothing happens
  assert.equal(store.get(second).assistantId, "a2");
  store.drop(second);
  assert.equal(store.record, null);
  assert.deepEqual(heard, [["sending", null], ["streaming", "sending"], ["queued", "streaming"], ["streaming", "queued"],
    ["streaming", "streaming"], [null, "streaming"]]);
  unsubscribe();
  store.begin();
  assert.equal(heard.length, 6);
});
