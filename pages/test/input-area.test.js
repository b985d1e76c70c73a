import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, key, settle } from "./dom-env.js";
import { InputArea } from "../src/components/chat/InputArea.js";
import { Session } from "../src/lib/session.js";

installDom();
let sent;
let stops;
let taken;
let session;
let input;
const $ = (sel) => document.querySelector(sel);

beforeEach(() => {
  fresh('<div id="composer"></div>');
  sent = [];
  stops = 0;
  taken = true;
  session = new Session();
  input = new InputArea($("#composer"), { onSend: (t) => (sent.push(t), taken), onStop: () => stops++ }, session);
});

test("Enter sends the text and empties the box", async () => {
  $("#message-input").value = "hello there";
  const ev = key($("#message-input"), "Enter");
  await settle();
  assert.equal(ev.defaultPrevented, true);
  assert.deepEqual(sent, ["hello there"]);
  assert.equal($("#message-input").value, "");
});

test("Shift+Enter makes a new line instead of sending; so does Enter while composing", async () => {
  $("#message-input").value = "line one";
  const ev = key($("#message-input"), "Enter", { shiftKey: true });
  key($("#message-input"), "Enter", { isComposing: true });
  await settle();
  assert.equal(ev.defaultPrevented, false);
  assert.deepEqual(sent, []);
  assert.equal($("#message-input").value, "line one");
});

test("the Send button sends; blank text is not sent", async () => {
  $("#message-input").value = "   ";
  $("#send-button").click();
  await settle();
  assert.deepEqual(sent, []);
  $("#message-input").value = "via button";
  $("#send-button").click();
  await settle();
  assert.deepEqual(sent, ["via button"]);
});

test("text the page did not take stays in the box", async () => {
  taken = false;
  $("#message-input").value = "keep me";
  key($("#message-input"), "Enter");
  await settle();
  assert.deepEqual(sent, ["keep me"]);
  assert.equal($("#message-input").value, "keep me");
});

test("while a reply streams: Stop instead of Send, Esc stops, Enter does not send", async () => {
  assert.equal($("#stop-button").hidden, true);
  assert.equal($("#send-button").hidden, false);
  session.set({ stream: { stopped: false } });
  assert.equal($("#stop-button").hidden, false);
  assert.equal($("#send-button").hidden, true);
  assert.equal($("#input-form").dataset.streaming, "true");
  $("#message-input").value = "next";
  key($("#message-input"), "Enter");
  key($("#message-input"), "Escape");
  $("#stop-button").click();
  await settle();
  assert.deepEqual(sent, []);
  assert.equal(stops, 2);
  session.set({ stream: null });
  assert.equal($("#stop-button").hidden, true);
  assert.equal($("#send-button").hidden, false);
  key($("#message-input"), "Escape");
  assert.equal(stops, 2);
});

test("switched off (device revoked): Send is disabled and nothing is sent", async () => {
  input.setEnabled(false);
  assert.equal($("#send-button").disabled, true);
  $("#message-input").value = "hello";
  key($("#message-input"), "Enter");
  await settle();
  assert.deepEqual(sent, []);
  input.setEnabled(true);
  assert.equal($("#send-button").disabled, false);
});
