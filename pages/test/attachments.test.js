// Attachments: the pure logic (chips, sizes, what the model saw, whether an image may
// go), the image size computation (the drawing itself is checked in Chromium), and the attach flow
// in a real composer: a picked file uploads at once, its chip shows name and size, Send takes it
// with the message, a refused file says why and the text stays, an image for a model that cannot
// see is not sent.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, settle } from "./dom-env.js";
import { chipText, formatSize, imageAllowed, pickedKind, seenNotes, toBase64 } from "../src/lib/attachments.js";
import { MAX_SIDE, renamed, targetSize } from "../src/lib/images.js";
import { InputArea } from "../src/components/chat/InputArea.js";
import { AttachmentController } from "../src/app/attachments.js";
import { ChatController } from "../src/app/chat.js";
import { MessageList } from "../src/components/chat/MessageList.js";
import { Session } from "../src/lib/session.js";
import { describe } from "../src/lib/describe.js";
import { ApiError } from "../src/lib/errors.js";

const w = installDom();
const $ = (sel) => document.querySelector(sel);

// ------------------------------------------------------------------ pure

test("sizes read as bytes, KB and MB", () => {
  assert.equal(formatSize(512), "512 bytes");
  assert.equal(formatSize(12_345), "12 KB");
  assert.equal(formatSize(3.4 * 1024 * 1024), "3.4 MB");
  assert.equal(formatSize(-1), "");
});

test("a chip shows the name, the size and a PDF's pages", () => {
  assert.deepEqual(chipText({ name: "report.pdf", size: 40_960, pages: 40 }), { name: "report.pdf", detail: "40 KB · 40 pages" });
  assert.deepEqual(chipText({ name: "a.txt", size: 10 }), { name: "a.txt", detail: "10 bytes" });
});

test("a picked file is an image by its type, or by its name when the browser gives none", () => {
  assert.equal(pickedKind({ name: "p.png", type: "image/png" }), "image");
  assert.equal(pickedKind({ name: "p.HEIC", type: "" }), "image");
  assert.equal(pickedKind({ name: "logo.svg", type: "image/svg+xml" }), "file");
  assert.equal(pickedKind({ name: "notes.txt", type: "text/plain" }), "file");
});

test("an image is allowed only for a model that can see, and the refusal names the model", () => {
  assert.equal(imageAllowed({ name: "llava", vision: true }).ok, true);
  assert.equal(imageAllowed(null).ok, true, "unknown list: the server decides");
  const no = imageAllowed({ name: "smollm2", label: "SmolLM2", vision: false });
  assert.equal(no.ok, false);
  assert.match(no.text, /^SmolLM2 cannot see images/);
});

test("the reply says how much of a document the model saw", () => {
  const seen = [
    { id: "a", name: "report.pdf", pages: 40, pages_seen: 12, whole: false },
    { id: "b", name: "whole.txt", lines: 3, lines_seen: 3, whole: true },
    { id: "c", lines: 400, lines_seen: 120, whole: false },
    { id: "d", name: "huge.pdf", pages: 9, pages_seen: 0, whole: false },
  ];
  assert.deepEqual(seenNotes(seen, { c: "log.txt" }), [
    "The model saw the first 12 of 40 pages of report.pdf: the rest did not fit in its context.",
    "The model saw the first 120 of 400 lines of log.txt: the rest did not fit in its context.",
    "The model saw only the start of the first page of huge.pdf (9 pages): the rest did not fit in its context.",
  ]);
  assert.deepEqual(seenNotes(undefined), []);
});

test("base64 of large bytes matches node's", () => {
  const bytes = new Uint8Array(200_000).map((_, i) => (i * 31) % 256);
  assert.equal(toBase64(bytes), Buffer.from(bytes).toString("base64"));
});

test("the image size keeps the aspect, caps the longest side and never enlarges", () => {
  assert.deepEqual(targetSize(4000, 3000), { width: MAX_SIDE, height: 768, scaled: true });
  assert.deepEqual(targetSize(1000, 3000), { width: 341, height: MAX_SIDE, scaled: true });
  assert.deepEqual(targetSize(640, 480), { width: 640, height: 480, scaled: false });
  assert.deepEqual(targetSize(5000, 1), { width: 1024, height: 1, scaled: true }, "at least one pixel");
  assert.throws(() => targetSize(0, 10), RangeError);
  assert.equal(renamed("IMG_0001.HEIC", "image/jpeg"), "IMG_0001.jpg");
});

test("describe words a refused attachment with the server's sentence, and a too-large body on its own", () => {
  const refused = new ApiError(422, "attachment_not_text", "notes.txt is not text: it is a ZIP archive with a text file's name.");
  assert.equal(describe(refused, { context: "attach" }).text, refused.message);
  assert.match(describe(new ApiError(413, "payload_too_large", "The request body is larger than 1 bytes."), { context: "attach" }).text,
    /larger than the server takes/);
});

// ------------------------------------------------------------------ the composer

function fakeApi({ refuse = null } = {}) {
  const calls = { uploads: [], deletes: [], chats: [] };
  let n = 0;
  return {
    calls,
    async uploadAttachment(body) {
      calls.uploads.push(body);
      if (refuse && body.name === refuse.name) throw refuse.error;
      const size = Buffer.from(body.data, "base64").length;
      return { id: `att-${++n}`, name: body.name, kind: body.mime.startsWith("image/") ? "image" : "document", mime: body.mime, size, pages: null };
    },
    async deleteAttachment(id) {
      calls.deletes.push(id);
      return { deleted: 1 };
    },
    async chat(body, handlers) {
      calls.chats.push(body);
      handlers.onStart({ conversation_id: "c1", user_message_id: "u1", assistant_message_id: "r1" }, "r1:0");
      handlers.onDone({ finish_reason: "stop", attachments_seen: [{ id: "att-1", name: "notes.txt", lines: 10, lines_seen: 4, whole: false }] }, "r1:1");
    },
  };
}

function wire({ model, api } = {}) {
  const body = fresh('<div id="composer"></div><div id="messages"><button id="jump-latest" hidden></button></div>');
  const session = new Session();
  session.set({ device: { deviceId: "d" } });
  const messages = new MessageList($("#messages"), { renderFragment: (t) => document.createTextNode(t) }, $("#jump-latest"));
  let chat;
  const input = new InputArea($("#composer"), { onSend: (t) => chat.send(t), onStop: () => {} }, session);
  const shrunk = [];
  const attachments = new AttachmentController({
    form: input.form, api, chosenModel: () => model, report: (err, context) => describe(err, { context }).text,
    shrink: async (file) => {
      shrunk.push(file.name);
      return { blob: new w.Blob([new Uint8Array(100)], { type: "image/jpeg" }), type: "image/jpeg", name: "photo.jpg" };
    },
  });
  chat = new ChatController({ api, session, messages, report: (e) => String(e.message), refreshHistory: () => {}, reloadWhenBack: () => {},
    recheck: () => {}, attachments });
  return { body, session, messages, attachments, input, chat, shrunk };
}

const file = (name, type, text) => new w.File([text], name, { type });

beforeEach(() => fresh());

test("a picked text file uploads at once and its chip shows name and size; Send takes it with the message", async () => {
  const api = fakeApi();
  const { attachments, input, messages } = wire({ model: { name: "m", vision: false }, api });
  assert.ok($("#attach-button") && $("#attach-input"), "the 📎 button and its file input are in the composer");
  await attachments.pick([file("notes.txt", "text/plain", "hello attached world")]);
  assert.equal(api.calls.uploads[0].name, "notes.txt");
  assert.equal(Buffer.from(api.calls.uploads[0].data, "base64").toString(), "hello attached world");
  const chip = $("#attachment-chips .attachment-chip");
  assert.equal(chip.querySelector(".attachment-name").textContent, "notes.txt");
  assert.equal(chip.querySelector(".attachment-size").textContent, "20 bytes");
  input.setText("What does it say?");
  await input.submit();
  await settle();
  assert.deepEqual(api.calls.chats[0].attachments, ["att-1"]);
  assert.equal(api.calls.chats[0].message, "What does it say?");
  assert.equal($("#attachment-chips").hidden, true, "the composer's chips went with the message");
  const sent = messages.views[0].el.querySelector(".attachment-row .attachment-name");
  assert.equal(sent.textContent, "notes.txt", "the sent message shows its chip");
  assert.match(messages.views[1].notice.textContent, /first 4 of 10 lines of notes\.txt/, "the reply says how much the model saw");
});

test("a refused file shows the server's sentence on its chip, and the text being written stays", async () => {
  const error = new ApiError(422, "attachment_not_text", "blob.txt is not text: its bytes are binary data, not UTF-8 or UTF-16 text.");
  const api = fakeApi({ refuse: { name: "blob.txt", error } });
  const { attachments, input } = wire({ model: { name: "m" }, api });
  input.setText("my long message");
  await attachments.pick([file("blob.txt", "text/plain", "\u0000\u0001")]);
  const chip = $(".attachment-chip");
  assert.equal(chip.dataset.status, "failed");
  assert.equal(chip.querySelector(".attachment-error").textContent, error.message);
  assert.equal(input.textarea.value, "my long message");
  await input.submit();
  await settle();
  assert.deepEqual(api.calls.chats[0].attachments, [], "a refused file is not sent");
});

test("an image for a model that cannot see is not uploaded; the attach button says why", async () => {
  const api = fakeApi();
  const { attachments, shrunk } = wire({ model: { name: "smollm2", label: "SmolLM2", vision: false }, api });
  assert.match($("#attach-button").getAttribute("aria-label"), /SmolLM2 cannot see images/);
  await attachments.pick([file("photo.png", "image/png", "png bytes")]);
  assert.equal(api.calls.uploads.length, 0);
  assert.equal(shrunk.length, 0);
  assert.match($("#attach-note").textContent, /SmolLM2 cannot see images/);
  assert.equal($("#attach-note").hidden, false);
});

test("an image for a model that can see is downsized before it is sealed and sent", async () => {
  const api = fakeApi();
  const { attachments, input } = wire({ model: { name: "eyes", vision: true }, api });
  await attachments.pick([file("photo.png", "image/png", "big png bytes")]);
  assert.equal(api.calls.uploads[0].name, "photo.jpg");
  assert.equal(api.calls.uploads[0].mime, "image/jpeg");
  assert.equal(Buffer.from(api.calls.uploads[0].data, "base64").length, 100, "the downsized bytes, not the picked file");
  input.setText("What is in it?");
  await input.submit();
  await settle();
  assert.deepEqual(api.calls.chats[0].attachments, ["att-1"]);
});

test("× takes back a file not sent yet; the server forgets it", async () => {
  const api = fakeApi();
  const { attachments } = wire({ model: { name: "m" }, api });
  await attachments.pick([file("a.txt", "text/plain", "a"), file("b.txt", "text/plain", "b")]);
  $(".attachment-chip .attachment-remove").click();
  await settle();
  assert.deepEqual(api.calls.deletes, ["att-1"]);
  assert.deepEqual([...document.querySelectorAll(".attachment-name")].map((e) => e.textContent), ["b.txt"]);
});

test("Send waits while an attachment uploads, and keeps the text", async () => {
  let release;
  const api = fakeApi();
  api.uploadAttachment = (body) => new Promise((resolve) => (release = () => resolve({ id: "late", name: body.name, size: 1, kind: "document" })));
  const { attachments, input } = wire({ model: { name: "m" }, api });
  const picking = attachments.pick([file("slow.txt", "text/plain", "s")]);
  await settle();
  input.setText("hold on");
  await input.submit();
  assert.equal(api.calls.chats.length, 0);
  assert.equal(input.textarea.value, "hold on");
  assert.match($("#attach-note").textContent, /still uploading/);
  release();
  await picking;
  await input.submit();
  await settle();
  assert.deepEqual(api.calls.chats[0].attachments, ["late"]);
});

test("a conversation from the server shows each message's chips and a stored reply's note", () => {
  fresh('<div id="messages"><button id="jump-latest" hidden></button></div>');
  const messages = new MessageList($("#messages"), { renderFragment: (t) => document.createTextNode(t) }, $("#jump-latest"));
  messages.show([
    { id: "u", role: "user", content: "read it", attachments: [{ id: "x", name: "big.pdf", size: 2048, pages: 40, kind: "document" }] },
    { id: "r", role: "assistant", content: "ok", attachments_seen: [{ id: "x", pages: 40, pages_seen: 12, whole: false }] },
  ]);
  assert.equal($(".attachment-row .attachment-name").textContent, "big.pdf");
  assert.equal($(".attachment-row .attachment-size").textContent, "2 KB · 40 pages");
  assert.match(messages.views[1].notice.textContent, /first 12 of 40 pages of big\.pdf/);
});
