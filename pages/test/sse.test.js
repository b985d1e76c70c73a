import { test } from "node:test";
import assert from "node:assert/strict";
import { SSEParser, parseSSEText, readSSE } from "../src/lib/sse.js";

const STREAM =
  ": ping\n\n" +
  'event: start\ndata: {"conversation_id":"c1","user_message_id":"u1","assistant_message_id":"a1"}\n\n' +
  'event: token\ndata: {"text":"Hé"}\n\n' +
  ": ping\n" +
  'event: token\ndata: {"text":"llo ✓ 😀"}\n\n' +
  "data: line one\ndata: line two\ndata:\ndata:  indented\n\n" +
  'event: done\ndata: {"finish_reason":"stop"}\n\n';

const EXPECTED = [
  { event: "start", data: '{"conversation_id":"c1","user_message_id":"u1","assistant_message_id":"a1"}' },
  { event: "token", data: '{"text":"Hé"}' },
  { event: "token", data: '{"text":"llo ✓ 😀"}' },
  { event: "message", data: "line one\nline two\n\n indented" },
  { event: "done", data: '{"finish_reason":"stop"}' },
];

function collect(chunks) {
  const events = [];
  const comments = [];
  const p = new SSEParser((e) => events.push({ event: e.event, data: e.data }), { onComment: (c) => comments.push(c) });
  for (const c of chunks) p.push(c);
  p.end();
  return { events, comments };
}

test("whole stream: events, names, multi-line data, comments", () => {
  const { events, comments } = collect([new TextEncoder().encode(STREAM)]);
  assert.deepEqual(events, EXPECTED);
  assert.deepEqual(comments, ["ping", "ping"]);
});

test("split at every byte position (including inside multi-byte UTF-8)", () => {
  const bytes = new TextEncoder().encode(STREAM);
  for (let i = 0; i <= bytes.length; i++) {
    const { events } = collect([bytes.subarray(0, i), bytes.subarray(i)]);
    assert.deepEqual(events, EXPECTED, `split at ${i}`);
  }
});

test("split at every pair of positions, and one byte at a time", () => {
  const bytes = new TextEncoder().encode(STREAM);
  for (let i = 0; i <= bytes.length; i += 3) {
    for (let j = i; j <= bytes.length; j += 7) {
      const { events } = collect([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
      assert.deepEqual(events, EXPECTED, `split at ${i},${j}`);
    }
  }
  const single = [];
  for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
  assert.deepEqual(collect(single).events, EXPECTED);
});

test("CRLF and CR line endings, split everywhere", () => {
  for (const eol of ["\r\n", "\r"]) {
    const text = STREAM.replace(/\n/g, eol);
    const bytes = new TextEncoder().encode(text);
    for (let i = 0; i <= bytes.length; i++) {
      const { events } = collect([bytes.subarray(0, i), bytes.subarray(i)]);
      assert.deepEqual(events, EXPECTED, `${JSON.stringify(eol)} split at ${i}`);
    }
  }
});

test("a final event without its blank line is not emitted", () => {
  const events = parseSSEText('event: token\ndata: {"text":"a"}\n\nevent: done\ndata: {"finish_reason":"stop"}\n');
  assert.deepEqual(
    events.map((e) => e.event),
    ["token"],
  );
  const p = [];
  const parser = new SSEParser((e) => p.push(e));
  parser.push("event: done\ndata: x\n");
  assert.equal(p.length, 0);
  parser.push("\n");
  assert.equal(p.length, 1);
  assert.equal(p[0].event, "done");
});

test("event name resets after each event; events without data are dropped", () => {
  const events = parseSSEText("event: token\n\ndata: a\n\nevent: x\ndata: b\n\ndata: c\n\n");
  assert.deepEqual(
    events.map((e) => [e.event, e.data]),
    [
      ["message", "a"],
      ["x", "b"],
      ["message", "c"],
    ],
  );
});

test("field without colon, no space after colon, BOM, unknown fields", () => {
  const events = parseSSEText("\uFEFFdata\nretry: 100\nfoo: bar\n\ndata:x\n\n");
  assert.deepEqual(
    events.map((e) => e.data),
    ["", "x"],
  );
});

test("readSSE reads a fetch-style ReadableStream", async () => {
  const bytes = new TextEncoder().encode(STREAM);
  const body = new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 5) controller.enqueue(bytes.subarray(i, i + 5));
      controller.close();
    },
  });
  const res = new Response(body, { headers: { "Content-Type": "text/event-stream" } });
  const events = [];
  const pings = [];
  await readSSE(res, (e) => events.push({ event: e.event, data: e.data }), { onComment: (c) => pings.push(c) });
  assert.deepEqual(events, EXPECTED);
  assert.equal(pings.length, 2);
});

test("readSSE rejects when the stream errors mid-way, after delivering complete events", async () => {
  let pulls = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (pulls++ === 0) {
        controller.enqueue(new TextEncoder().encode('event: token\ndata: {"text":"a"}\n\nevent: token\ndata: {"te'));
      } else {
        controller.error(new TypeError("network error"));
      }
    },
  });
  const events = [];
  await assert.rejects(() => readSSE(new Response(body), (e) => events.push(e)), TypeError);
  assert.equal(events.length, 1);
});
