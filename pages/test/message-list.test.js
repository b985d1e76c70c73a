import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, frame } from "./dom-env.js";
import { createMarkdown } from "../src/lib/markdown.js";
import { MessageList, replyLook } from "../src/components/chat/MessageList.js";
import { PHASES, ReplyStore, newReply } from "../src/lib/reply-store.js";

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

// ------------------------------------------------------------------ the reply being written, from its record

const notice = (el) => el.querySelector(".message-notice");

test("a reply record is drawn in every phase: its status, its notice, its place in the queue", async () => {
  list.modelLabel = (name) => (name === "big" ? "Big model" : name);
  const store = new ReplyStore();
  list.showReplies(store);
  list.add({ id: "u1", role: "user", content: "Hello", status: "complete" });
  const serial = store.begin({ conversationId: "c1" });
  const el = scroller.querySelector('.message[data-role="assistant"]');
  const look = () => [el.dataset.status, el.querySelector(".message-badge").textContent, notice(el).hidden ? null : notice(el).textContent, el.dataset.queued];
  assert.deepEqual(look(), ["streaming", "writing…", null, undefined], "sending");
  store.apply(serial, "start", { assistant_message_id: "a1", conversation_id: "c1", model: "big" });
  assert.equal(el.dataset.id, "a1");
  assert.equal(list.viewOf("a1").el, el);
  store.apply(serial, "queued", { position: 2 });
  assert.deepEqual(look(), ["streaming", "writing…", "Waiting for the model, another reply is being written. Your place in the queue: 2.", "2"]);
  store.apply(serial, "queued", {});
  assert.deepEqual(look(), ["streaming", "writing…", "Waiting for the model, another reply is being written.", ""]);
  store.apply(serial, "loading", { model: "big" });
  assert.deepEqual(look(), ["streaming", "writing…", "Loading Big model — the first reply after a switch waits for it.", undefined]);
  store.apply(serial, "lost");
  assert.deepEqual(look(), ["streaming", "writing…", "Connection lost — picking the reply up again…", undefined]);
  store.apply(serial, "open");
  assert.equal(look()[2], "Loading Big model — the first reply after a switch waits for it.", "back to what it waited for");
  store.apply(serial, "token", { text: "Hi **there**" });
  assert.deepEqual(look(), ["streaming", "writing…", null, undefined]);
  await frame();
  assert.equal(el.querySelector(".message-body strong").textContent, "there");
  store.apply(serial, "done", { finish_reason: "stop", usage: { completion_tokens: 2 }, message_cut: true });
  assert.deepEqual(look().slice(0, 2), ["complete", ""]);
  assert.match(look()[2], /the start of it was cut/, "the note on what the model did not read stays under the status");
  assert.equal(el.querySelector(".message-meta").textContent, "Big model · 2 tokens");
  assert.equal(el.getAttribute("aria-busy"), "false");
  assert.equal(scroller.querySelectorAll(".message").length, 2, "one view for the reply throughout");
});

test("a reply record's endings: stopped, interrupted, failed with the store's sentence", () => {
  const store = new ReplyStore();
  list.showReplies(store);
  const ends = [
    [[["stop"], ["done", { finish_reason: "stop" }]], "cancelled", /^Stopped — the reply above is partial\./],
    [[["closed"]], "interrupted", /^Interrupted — /],
    [[["error", { sentence: "The model stopped with an error: out of memory" }]], "error", /^The model stopped with an error: out of memory$/],
  ];
  for (const [events, status, sentence] of ends) {
    const serial = store.begin();
    store.apply(serial, "start", { assistant_message_id: `a${serial}` });
    store.apply(serial, "token", { text: "part" });
    for (const [event, data] of events) store.apply(serial, event, data);
    const el = list.viewOf(`a${serial}`).el;
    assert.equal(el.dataset.status, status);
    assert.match(notice(el).textContent, sentence);
  }
});

test("replyLook: every phase has a look, and only the waiting ones say why", () => {
  const looks = Object.fromEntries(PHASES.map((phase) => [phase, replyLook({ ...newReply(), phase, queuePosition: 1, loadingModel: "m", error: "Why." })]));
  assert.deepEqual(Object.fromEntries(Object.entries(looks).map(([p, l]) => [p, l.status])), {
    sending: "streaming", queued: "streaming", loading: "streaming", streaming: "streaming", reconnecting: "streaming",
    complete: "complete", cancelled: "cancelled", interrupted: "interrupted", error: "error",
  });
  assert.deepEqual(PHASES.filter((p) => looks[p].notice), ["queued", "loading", "reconnecting", "error"]);
  assert.deepEqual(PHASES.filter((p) => looks[p].queued !== null), ["queued"]);
});

test("a reply attached to is drawn in its view on screen; a dropped reply takes its view; a cleared list is not drawn again", async () => {
  const store = new ReplyStore();
  list.showReplies(store);
  list.show([{ id: "u9", role: "user", content: "long" }, { id: "a9", role: "assistant", content: "Once", status: "streaming" }]);
  const serial = store.begin({ assistantId: "a9", attached: true });
  store.apply(serial, "token", { text: "Once upon" });
  await frame();
  assert.deepEqual(bodies(), [["user", "complete", "long"], ["assistant", "streaming", "Once upon"]]);
  const unsent = store.begin();
  assert.equal(scroller.querySelectorAll(".message").length, 3);
  store.drop(unsent);
  assert.equal(scroller.querySelectorAll(".message").length, 2, "never reached the model: no reply shown");
  const running = store.begin();
  list.clear(); // another conversation opened
  store.apply(running, "closed");
  assert.equal(scroller.querySelectorAll(".message").length, 0);
});

// ------------------------------------------------------------------ syntax colours in code blocks

const PYTHON = 'import os\n\ndef greet(name: str) -> str:\n    """Say hello."""\n    return f"hello {name}"  # a comment\n\nprint(greet("world"), 42)\n';

test("syntax colours: a python block gets highlight.js spans, and its text is unchanged", () => {
  const reply = list.add({ role: "assistant", content: "Here:\n\n```python\n" + PYTHON + "```\n", status: "complete" });
  const code = reply.el.querySelector(".code-block pre > code");
  assert.equal(code.textContent, PYTHON);
  const spans = [...code.querySelectorAll("span")];
  assert.ok(spans.length > 5, `only ${spans.length} spans`);
  assert.ok(spans.every((s) => /^(?:hljs-|language-)/.test(s.className)), "a span without an hljs class");
  assert.deepEqual([...code.querySelectorAll(".hljs-keyword")].map((s) => s.textContent).slice(0, 3), ["import", "def", "return"]);
  assert.ok(code.querySelector(".hljs-string, .hljs-comment"), "no string or comment span");
  assert.ok(code.querySelectorAll("[style]").length === 0, "an inline style (the CSP allows none)");
  assert.equal(reply.el.querySelector(".code-lang").textContent, "python");
  // An alias of a registered language is coloured too.
  const py = list.add({ role: "assistant", content: "```py\nx = None\n```", status: "complete" });
  assert.ok(py.el.querySelector("code .hljs-literal"), "py is python");
});

test("syntax colours: a language that is not registered is left plain, as is a short block with none", () => {
  const reply = list.add({ role: "assistant", content: "```brainfuck\n++[>+<-]>.\n```\n\n```\nls -la\n```\n\n```fortran\nprogram hello\n  print *, 'Hello'\nend program hello\n```", status: "complete" });
  const codes = [...reply.el.querySelectorAll(".code-block code")];
  assert.equal(codes.length, 3);
  for (const code of codes) {
    assert.equal(code.children.length, 0, code.textContent);
    assert.ok(!code.classList.contains("hljs"));
  }
  assert.equal(codes[0].textContent, "++[>+<-]>.\n");
  assert.equal(codes[2].textContent, "program hello\n  print *, 'Hello'\nend program hello\n");
});

test("syntax colours: a longer block with no language is coloured only when it is recognised", () => {
  const js = "function add(a, b) {\n  const sum = a + b;\n  return sum;\n}\nconsole.log(add(1, 2));\n";
  const reply = list.add({ role: "assistant", content: "```\n" + js + "```", status: "complete" });
  const code = reply.el.querySelector(".code-block code");
  assert.equal(code.textContent, js);
  assert.ok(code.querySelector(".hljs-keyword"), "not recognised");
  const prose = "just some words\nin a few lines\nof plain text\n";
  const plain = list.add({ role: "assistant", content: "```\n" + prose + "```", status: "complete" });
  assert.equal(plain.el.querySelector(".code-block code").children.length, 0);
  assert.equal(plain.el.querySelector(".code-block code").textContent, prose);
});

test("syntax colours: markup inside code stays text, never an element", () => {
  const html = '<script>window.__pwned = 1</script>\n<img src=x onerror="window.__pwned = 2">\n<div class="hljs-keyword" style="color:red">hi</div>\n';
  for (const lang of ["html", "python", "javascript"]) {
    const reply = list.add({ role: "assistant", content: "```" + lang + "\n" + html + "```", status: "complete" });
    const code = reply.el.querySelector(".code-block code");
    assert.equal(code.textContent, html, lang);
    assert.equal(reply.el.querySelector("script, img, div.hljs-keyword, [onerror], [style]"), null, lang);
    assert.ok([...code.querySelectorAll("*")].every((el) => el.tagName === "SPAN"), lang);
  }
  assert.equal(window.__pwned, undefined);
  // The markdown renderer itself keeps no hljs- class that a reply wrote as HTML.
  const raw = list.add({ role: "assistant", content: '<span class="hljs-keyword">x</span>', status: "complete" });
  assert.equal(raw.el.querySelector(".message-body [class]"), null);
});

test("syntax colours: Copy copies the plain code", async () => {
  let copied = null;
  Object.defineProperty(navigator, "clipboard", { value: { writeText: async (t) => { copied = t; } }, configurable: true });
  const secure = Object.getOwnPropertyDescriptor(window, "isSecureContext");
  Object.defineProperty(window, "isSecureContext", { value: true, configurable: true });
  try {
    const reply = list.add({ role: "assistant", content: "```python\n" + PYTHON + "```", status: "complete" });
    assert.ok(reply.el.querySelector(".code-block code .hljs-keyword"));
    const button = reply.el.querySelector(".code-block .copy-button");
    button.click();
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(copied, PYTHON);
    assert.equal(button.textContent, "Copied");
  } finally {
    delete navigator.clipboard;
    if (secure) Object.defineProperty(window, "isSecureContext", secure);
    else delete window.isSecureContext;
  }
});
