import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh } from "./dom-env.js";
import { ConnectionStatus, STATES } from "../src/components/chat/ConnectionStatus.js";
import { START, decide } from "../src/lib/connection.js";
import { NetworkError } from "../src/lib/errors.js";

installDom();
let status;
let runs;
const $ = (sel) => document.querySelector(sel);

beforeEach(() => {
  fresh(`<div id="status" role="status" data-state="connecting"><span class="status-dot"></span><span class="status-text">Connecting…</span></div>
         <span id="status-note" class="status-note"></span><div id="status-actions" hidden></div>`);
  runs = [];
  status = new ConnectionStatus($("#status"), $("#status-actions"), { onAction: (run) => runs.push(run) });
});

const buttons = () => [...$("#status-actions").querySelectorAll("button")].map((b) => `${b.id}:${b.textContent}`);

test("starts as Connecting… with no buttons", () => {
  assert.equal($("#status").dataset.state, "connecting");
  assert.equal($("#status").textContent, "Connecting…");
  assert.equal($("#status-actions").hidden, true);
});

test("shows the sentence, the state and the buttons of a state; a button reports what it does", () => {
  status.show(decide(START, { error: new NetworkError("access"), apiOrigin: "https://api.example.org" }).status);
  assert.equal($("#status").dataset.state, "access");
  assert.equal($("#status").textContent, "Cloudflare Access sign-in needed");
  assert.equal($("#status-actions").hidden, false);
  assert.deepEqual(buttons(), ["access-signin:Sign in (new tab)", "status-retry:Retry"]);
  $("#access-signin").click();
  $("#status-retry").click();
  assert.deepEqual(runs, ["signin", "retry"]);
});

test("the unreachable sentence on the owner's own computer", () => {
  status.show(decide(START, { error: new NetworkError("unreachable"), apiOrigin: "http://127.0.0.1:8765" }).status);
  assert.equal($("#status").dataset.state, "unreachable");
  assert.equal($("#status .status-text").textContent, "Server not reachable — start it with privchat serve");
  assert.equal($("#status .status-text code").textContent, "privchat serve"); // backticks drawn as <code>, as text
  assert.deepEqual(buttons(), ["status-retry:Retry now"]);
});

test("the note (a countdown) sits outside the live region", () => {
  status.show({ state: "unreachable", text: "x", note: "Retrying in 3s…" });
  assert.equal($("#status-note").textContent, "Retrying in 3s…");
  assert.ok(!$("#status").contains($("#status-note")));
  status.setNote("");
  assert.equal($("#status-note").textContent, "");
});

test("the same buttons are kept (focus stays on them while a countdown ticks)", () => {
  const actions = [{ id: "status-retry", label: "Retry now", run: "retry" }];
  status.show({ state: "reconnecting", text: "Reconnecting in 3s…", actions });
  const before = $("#status-retry");
  status.show({ state: "reconnecting", text: "Reconnecting in 2s…", actions });
  assert.equal($("#status-retry"), before);
  assert.equal($("#status").textContent, "Reconnecting in 2s…");
  status.show({ state: "ready", text: "Ready — qwen" });
  assert.deepEqual(buttons(), []);
  assert.equal($("#status-actions").hidden, true);
});

test("every known state can be shown; an unknown one is a bug", () => {
  for (const state of STATES) {
    status.show({ state, text: state });
    assert.equal($("#status").dataset.state, state);
  }
  assert.throws(() => status.show({ state: "fine", text: "?" }), /unknown status/);
});
