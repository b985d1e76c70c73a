// What a reply's events mean to the chat (lib/chat-events.js): the transport hands on {event, id,
// data} without knowing the names; these are the chat's handlers, by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chatEventHandlers } from "../src/lib/chat-events.js";
import { StreamError } from "../src/lib/errors.js";

function recorded() {
  const got = [];
  const push = (name) => (data, id) => got.push([name, data, id]);
  const handlers = {
    onPing: () => got.push(["ping"]),
    onStart: push("start"),
    onQueued: push("queued"),
    onLoading: push("loading"),
    onToken: push("token"),
    onSnapshot: push("snapshot"),
    onDone: push("done"),
    onError: push("error"),
  };
  return { got, handlers };
}

test("each event goes to its handler with its data and id; a frame is a ping", () => {
  const { got, handlers } = recorded();
  const on = chatEventHandlers(handlers);
  on.onFrame();
  for (const [event, data, id] of [
    ["queued", { position: 1 }, "a1:0"],
    ["loading", { model: "m" }, "a1:1"],
    ["start", { assistant_message_id: "a1" }, "a1:2"],
    ["token", { text: "Hi" }, "a1:3"],
    ["snapshot", { text: "All." }, null],
    ["done", { finish_reason: "stop" }, "a1:4"],
  ]) on.onEvent({ event, id, data });
  assert.deepEqual(got, [
    ["ping"],
    ["queued", { position: 1 }, "a1:0"],
    ["loading", { model: "m" }, "a1:1"],
    ["start", { assistant_message_id: "a1" }, "a1:2"],
    ["token", { text: "Hi" }, "a1:3"],
    ["snapshot", { text: "All." }, undefined], // no number: no id
    ["done", { finish_reason: "stop" }, "a1:4"],
  ]);
});

test("the stream's error event comes as a StreamError with the server's code and sentence", () => {
  const { got, handlers } = recorded();
  const on = chatEventHandlers(handlers);
  on.onEvent({ event: "error", id: "a1:5", data: { code: "model_failed", message: "boom" } });
  on.onEvent({ event: "error", id: null, data: null });
  const [[, first, firstId], [, second, secondId]] = got;
  assert.ok(first instanceof StreamError);
  assert.deepEqual([first.code, first.message, firstId], ["model_failed", "boom", "a1:5"]);
  assert.ok(second instanceof StreamError);
  assert.deepEqual([second.code, secondId], [null, undefined]);
});

test("an event name the page does not know is passed over; missing handlers are fine", () => {
  const { got, handlers } = recorded();
  const on = chatEventHandlers(handlers);
  for (const event of ["tool_call", "constructor", "toString", "__proto__", "onToken"]) on.onEvent({ event, id: "a1:1", data: {} });
  assert.deepEqual(got, []);
  const bare = chatEventHandlers();
  bare.onFrame();
  bare.onEvent({ event: "token", id: "a1:1", data: { text: "x" } });
  bare.onEvent({ event: "error", id: null, data: {} });
});
