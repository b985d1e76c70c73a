import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, frame } from "./dom-env.js";
import { createMarkdown } from "../src/lib/markdown.js";
import { MessageList } from "../src/components/chat/MessageList.js";

const win = installDom();
const md = createMarkdown(win);
let list;
let scroller;

beforeEach(() => {
  fresh('<div id="messages"><button id="jump-latest" hidden>↓ Jump to latest</button></div>');
  scroller = document.getElementById("messages");
  list = new MessageList(scroller, md, document.getElementById("jump-latest"));
});

const bodies = () => [...scroller.querySelectorAll(".message")].map((m) => [m.dataset.role, m.dataset.status, m.querySelector(".message-body").textContent.trim()]);

test("empty at first: the start hint, then messages in order", () => {
  const empty = scroller.querySelector(".empty-state");
  assert.equal(empty.hidden, false);
  list.add({ role: "user", content: "hello", status: "complete" });
  list.add({ role: "assistant", content: "hi there", status: "complete" });
  assert.equal(empty.hidden, true);
  assert.deepEqual(bodies(), [["user", "complete", "hello"], ["assistant", "complete", "hi there"]]);
  // Messages go before the "jump to latest" button.
  assert.equal(scroller.querySelector(".message ~ #jump-latest")?.id, "jump-latest");
  list.clear();
  assert.deepEqual(bodies(), []);
  assert.equal(empty.hidden, false);
});

test("a reply is rendered as markdown, safely", () => {
  const reply = list.add({
    role: "assistant",
    content: '**bold** <script>window.__x = 1</script> <img src=x onerror="window.__x=1"> [link](javascript:alert(1)) [ok](https://example.org)',
  });
  const body = reply.el.querySelector(".message-body");
  assert.equal(body.querySelector("strong").textContent, "bold");
  assert.equal(body.querySelector("script"), null);
  assert.equal(body.querySelector("img"), null);
  assert.equal(body.querySelector("[onerror]"), null);
  const links = [...body.querySelectorAll("a")];
  assert.ok(links.every((a) => !/^javascript:/i.test(a.getAttribute("href") || "")));
  const ok = links.find((a) => a.textContent === "ok");
  assert.equal(ok.getAttribute("href"), "https://example.org");
  assert.equal(ok.getAttribute("rel"), "noopener noreferrer");
});

test("the owner's own text is shown as text, never as HTML", () => {
  const mine = list.add({ role: "user", content: '<img src=x onerror="alert(1)"> **not bold**' });
  const body = mine.el.querySelector(".message-body");
  assert.equal(body.textContent, '<img src=x onerror="alert(1)"> **not bold**');
  assert.equal(body.children.length, 0);
});

test("a streaming reply grows token by token and ends complete", async () => {
  const reply = list.add({ role: "assistant", content: "", status: "streaming" });
  assert.equal(reply.el.dataset.status, "streaming");
  assert.equal(reply.el.getAttribute("aria-busy"), "true");
  assert.equal(reply.el.querySelector(".message-badge").textContent, "writing…");
  reply.append("Hello");
  reply.append(", **world**");
  await frame();
  const body = reply.el.querySelector(".message-body");
  assert.equal(body.textContent.trim(), "Hello, world");
  assert.equal(body.querySelector("strong").textContent, "world");
  reply.append("!");
  await frame();
  assert.equal(body.textContent.trim(), "Hello, world!");
  reply.setStatus("complete");
  reply.setMeta({ usage: { completion_tokens: 12 }, timings: { tokens_per_second: 20.04, ttft_ms: 140.4 }, finish_reason: "length" });
  assert.equal(reply.el.dataset.status, "complete");
  assert.equal(reply.el.getAttribute("aria-busy"), "false");
  assert.equal(reply.el.querySelector(".message-badge").hidden, true);
  assert.equal(reply.el.querySelector(".message-meta").textContent, "12 tokens · 20.0 tokens/s · first token 140 ms · stopped at the token limit");
});

test("stopped and interrupted replies say they are partial", () => {
  const stopped = list.add({ role: "assistant", content: "part", status: "streaming" });
  stopped.setStatus("cancelled");
  assert.equal(stopped.el.querySelector(".message-badge").textContent, "stopped");
  assert.match(stopped.el.querySelector(".message-notice").textContent, /^Stopped — the reply above is partial\./);
  const cut = list.add({ role: "assistant", content: "part", status: "streaming" });
  cut.setStatus("interrupted");
  assert.match(cut.el.querySelector(".message-notice").textContent, /^Interrupted — /);
});

test("a message that did not reach the model keeps its text and offers Retry", () => {
  const mine = list.add({ role: "user", content: "Are you there?", status: "sending" });
  let retried = 0;
  mine.setFailed("model.bin is not a GGUF file", () => retried++);
  assert.equal(mine.el.dataset.status, "failed");
  assert.equal(mine.el.querySelector(".message-badge").textContent, "not sent");
  assert.match(mine.el.querySelector(".message-notice").textContent, /not a GGUF file/);
  mine.el.querySelector(".retry-button").click();
  assert.equal(retried, 1);
  assert.equal(mine.el.querySelector(".message-body").textContent, "Are you there?");
});

test("a conversation from the server replaces the list; code blocks get a copy button", () => {
  list.add({ role: "user", content: "old" });
  list.show([
    { id: "m1", role: "user", content: "show code", created_at: "2024-01-01T10:00:00Z" },
    { id: "m2", role: "assistant", content: "```js\nlet x = 1;\n```", status: "complete" },
    { id: "m3", role: "assistant", content: "cut", status: "interrupted" },
  ]);
  assert.deepEqual([...scroller.querySelectorAll(".message")].map((m) => [m.dataset.id, m.dataset.status]), [["m1", "complete"], ["m2", "complete"], ["m3", "interrupted"]]);
  const block = scroller.querySelector('.message[data-id="m2"] .code-block');
  assert.equal(block.querySelector(".copy-button").textContent, "Copy");
  assert.equal(block.querySelector("code").textContent, "let x = 1;\n");
});

test("removing the last message brings the start hint back", () => {
  const v = list.add({ role: "user", content: "x" });
  list.removeView(v);
  assert.equal(scroller.querySelector(".empty-state").hidden, false);
  assert.equal(scroller.querySelectorAll(".message").length, 0);
});

test("a reply to a message the model could not read whole says the start of it was cut", () => {
  const reply = list.add({ role: "assistant", content: "", status: "streaming" });
  reply.append("Paris.");
  reply.setStatus("complete");
  reply.setMeta({ usage: { completion_tokens: 2 }, finish_reason: "stop", dropped_messages: 3, message_cut: true });
  const notice = reply.el.querySelector(".message-notice");
  assert.equal(notice.hidden, false);
  assert.match(notice.textContent, /Your message was longer than the model can read: the start of it was cut/);
  const whole = list.add({ role: "assistant", content: "", status: "streaming" });
  whole.setStatus("complete");
  whole.setMeta({ usage: { completion_tokens: 2 }, finish_reason: "stop", dropped_messages: 0, message_cut: false });
  assert.equal(whole.el.querySelector(".message-notice").hidden, true);
});
