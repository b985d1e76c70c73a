// The rough edges a new user hits, one test each where jsdom can check it.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, settle, until } from "./dom-env.js";
import { createMarkdown } from "../src/lib/markdown.js";
import { describe } from "../src/lib/describe.js";
import { ApiError } from "../src/lib/errors.js";
import { withCode } from "../src/lib/inline-code.js";
import { DeviceAuth } from "../src/components/chat/DeviceAuth.js";
import { ConnectionStatus } from "../src/components/chat/ConnectionStatus.js";
import { MessageList, storedMeta } from "../src/components/chat/MessageList.js";
import { Sidebar } from "../src/components/chat/Sidebar.js";
import { DevicesPanel, SettingsPanel } from "../src/components/chat/Panels.js";
import { Session } from "../src/lib/session.js";
import { ApiClient } from "../src/lib/api.js";
import { DevicesController } from "../src/app/devices.js";
import { PairingController } from "../src/app/pairing.js";
import { SettingsController } from "../src/app/settings.js";
import { makeServerKey } from "./e2e-server.js";

/** Taps Pair and waits for the pairing (real WebCrypto work) to end. */
async function tapPair(auth) {
  $("#pair-button").click();
  await settle(5);
  await until(() => !auth.busy, "the pairing to end", 20_000); // real WebCrypto work
  await settle(5);
}

const win = installDom();
const $ = (sel) => document.querySelector(sel);
const report = (err, context) => describe(err, { context }).text;

beforeEach(() => fresh(""));

const SERVER = await makeServerKey(); // the server's end-to-end key, published by health

function pairingApi() {
  return {
    origin: "https://chat-api.example.org",
    registered: [],
    registerError: null,
    lastHealth: null,
    async health() {
      this.lastHealth = { status: "ok", e2e: SERVER.pin };
      return this.lastHealth;
    },
    publishedServerKey: ApiClient.prototype.publishedServerKey,
    async registerDevice(req) {
      this.registered.push(req);
      if (this.registerError) throw this.registerError;
      return { device_id: req.device.deviceId, name: req.name };
    },
  };
}

function pairingForm(api = pairingApi()) {
  fresh('<section id="pairing-view" hidden></section>');
  const paired = [];
  const auth = new DeviceAuth($("#pairing-view"), {
    actions: new PairingController({
      api,
      onPaired: (d) => paired.push(d),
      onSignIn: () => {},
      keys: { checkKeyStorage: async () => {}, saveDevice: async (rec) => rec },
    }),
  });
  return { auth, api, paired };
}

test("a pairing error is scrolled into view and focused (a phone shows it above the footer)", async () => {
  const scrolled = [];
  const proto = win.HTMLElement.prototype;
  const had = proto.scrollIntoView;
  proto.scrollIntoView = function scrollIntoView(opts) {
    scrolled.push([this.id, opts && opts.block]);
  };
  try {
    const { auth, api } = pairingForm();
    auth.show({});
    api.registerError = new ApiError(403, "pairing_invalid", "wrong");
    $("#pair-code").value = "ABCDE-12345";
    await tapPair(auth);
    assert.equal($("#pair-error").hidden, false);
    assert.deepEqual(scrolled, [["pair-error", "center"]]);
    assert.equal(document.activeElement, $("#pair-error"));
    assert.equal($("#pair-error").getAttribute("tabindex"), "-1");
  } finally {
    proto.scrollIntoView = had;
  }
});

test("the intro's detail steps can be hidden on a phone; the fingerprint step says where to look", () => {
  const { auth } = pairingForm();
  auth.show({});
  assert.equal(document.querySelectorAll(".pair-steps .pair-step-detail").length, 2);
  const compare = $("#pair-compare");
  assert.match(compare.textContent, /privchat pair --wait/);
  assert.match(compare.textContent, /at the top/);
});

test("an already used code is reported as used, not as a typo", async () => {
  const used = describe(new ApiError(403, "pairing_used", "used"), { context: "pairing" }).text;
  assert.match(used, /already used/);
  assert.doesNotMatch(used, /typo/);
  const { auth, api } = pairingForm();
  auth.show({});
  api.registerError = new ApiError(403, "pairing_used", "That pairing code was already used.");
  $("#pair-code").value = "ABCDE-12345";
  await tapPair(auth);
  assert.match($("#pair-error").textContent, /already used/);
});

test("a code from a link: the big Pair button has the focus, nothing is sent before the tap, one tap pairs", async () => {
  const { auth, api, paired } = pairingForm();
  auth.show({ code: "ABCDE-12345" });
  await settle(5);
  assert.equal(api.registered.length, 0, "a code from a link is never sent without a gesture");
  assert.equal(document.activeElement, $("#pair-button"));
  assert.ok($("#pair-button").classList.contains("big"));
  assert.ok($("#pair-link-note"));
  await tapPair(auth);
  assert.equal(api.registered.length, 1);
  assert.equal(api.registered[0].pairingCode, "ABCDE-12345");
  assert.equal(paired.length, 1);
});

test("backticks become <code> as text, never as HTML", () => {
  const parts = withCode("run `privchat serve` then `<img src=x onerror=alert(1)>` and `a`b");
  const codes = parts.filter((p) => typeof p !== "string");
  assert.deepEqual(codes.map((c) => c.tagName), ["CODE", "CODE", "CODE"]);
  assert.equal(codes[1].textContent, "<img src=x onerror=alert(1)>");
  assert.equal(codes[1].children.length, 0);
  assert.equal(parts.at(-1), "b");
  // the status pill and the pairing error draw them
  fresh('<div id="status"><span class="status-text"></span></div><div id="status-actions"></div>');
  const status = new ConnectionStatus($("#status"), $("#status-actions"));
  status.show({ state: "unreachable", text: "Server not reachable — start it with `privchat serve`" });
  assert.equal($("#status .status-text code").textContent, "privchat serve");
  assert.ok(!$("#status").textContent.includes("`"));
});

test("the status tells its listener when the state changes, once", () => {
  fresh('<div id="status"><span class="status-text"></span></div><div id="status-actions"></div>');
  const states = [];
  const status = new ConnectionStatus($("#status"), $("#status-actions"), { onState: (s) => states.push(s) });
  status.show({ state: "revoked", text: "Device revoked" });
  status.show({ state: "revoked", text: "Device revoked" });
  status.show({ state: "ready", text: "Ready" });
  assert.deepEqual(states, ["connecting", "revoked", "ready"]);
});

function settingsApi() {
  return {
    saved: [],
    async getSettings() {
      return { system_prompt: "Mine.", temperature: 1.4, max_tokens: 64, defaults: { system_prompt: "Default.", temperature: 0.7, max_tokens: 512 } };
    },
    async putSettings(s) {
      this.saved.push(s);
      return { ...s, defaults: { system_prompt: "Default.", temperature: 0.7, max_tokens: 512 } };
    },
  };
}

test("settings: every invalid field is marked beside it, all at once, and cleared when fixed", async () => {
  const api = settingsApi();
  const panel = new SettingsPanel({ actions: new SettingsController({ api, report }) });
  await panel.open();
  $("#setting-temperature").value = "9";
  $("#setting-max-tokens").value = "0";
  await panel.submit();
  assert.equal($("#setting-temperature-error").hidden, false);
  assert.equal($("#setting-max-tokens-error").hidden, false);
  assert.equal($("#setting-temperature").getAttribute("aria-invalid"), "true");
  assert.equal($("#setting-max-tokens").getAttribute("aria-invalid"), "true");
  assert.equal($("#setting-temperature").getAttribute("aria-describedby"), "setting-temperature-error");
  assert.match($("#settings-status").textContent, /2 fields/);
  assert.deepEqual(api.saved, []);
  $("#setting-temperature").value = "1";
  $("#setting-max-tokens").value = "100";
  await panel.submit();
  assert.equal($("#setting-temperature-error").hidden, true);
  assert.equal($("#setting-max-tokens").hasAttribute("aria-invalid"), false);
  assert.equal($("#settings-status").textContent, "Saved.");
});

test("settings: Reset to defaults saves the server's defaults; the page says what is shared and what stays here", async () => {
  const api = settingsApi();
  const panel = new SettingsPanel({ actions: new SettingsController({ api, report }) });
  await panel.open();
  assert.equal($("#settings-reset").hidden, false);
  $("#settings-reset").click();
  await settle(10);
  assert.deepEqual(api.saved, [{ system_prompt: "Default.", temperature: 0.7, max_tokens: 512 }]);
  assert.equal($("#setting-system-prompt").value, "Default.");
  assert.equal($("#settings-status").textContent, "Reset to the defaults and saved.");
  assert.match($("#settings-server-heading").textContent, /server.*every device/);
  assert.match($("#settings-local-heading").textContent, /this browser only/);
  assert.match($("#settings-local-note").textContent, /theme and notifications/);
  // an older server without defaults: no reset button
  fresh("");
  const old = new SettingsPanel({ actions: new SettingsController({ api: { async getSettings() { return { system_prompt: "", temperature: 1, max_tokens: 5 }; } }, report }) });
  await old.open();
  assert.equal($("#settings-reset").hidden, true);
});

function messageList() {
  fresh('<div id="messages"><button id="jump-latest" hidden>↓</button></div>');
  return new MessageList($("#messages"), createMarkdown(win), $("#jump-latest"));
}

test("a reply loaded from history keeps its token count, speed and the token-limit line", () => {
  const list = messageList();
  list.show([
    { id: "u", role: "user", content: "hi", status: "complete" },
    { id: "a", role: "assistant", content: "cut", status: "complete", completion_tokens: 12, tokens_per_second: 31.25, ttft_ms: 80.4, finish_reason: "length" },
    { id: "b", role: "assistant", content: "old", status: "complete" },
  ]);
  const metas = [...document.querySelectorAll(".message-meta")].map((m) => m.textContent);
  assert.deepEqual(metas, ["", "12 tokens · 31.3 tokens/s · first token 80 ms · stopped at the token limit", ""]);
  assert.deepEqual(storedMeta({ completion_tokens: null, finish_reason: "stop" }).finish_reason, "stop");
});

test("an empty code block has no Copy button; a filled one has", () => {
  const list = messageList();
  list.show([{ id: "a", role: "assistant", content: "```\n```\n\n```js\nlet x = 1;\n```", status: "complete" }]);
  assert.equal(document.querySelectorAll("#messages pre").length, 2);
  assert.equal(document.querySelectorAll("#messages .copy-button").length, 1);
});

test("a revoked device is not invited to start a conversation", () => {
  const list = messageList();
  list.setConnectionState("revoked");
  assert.doesNotMatch($(".empty-state").textContent, /Start a conversation/);
  assert.match($(".empty-state h2").textContent, /revoked/);
  assert.equal($(".empty-state code").textContent, "privchat pair");
  list.setConnectionState("ready");
  assert.equal($(".empty-state h2").textContent, "Start a conversation");
});

test("the open conversation has aria-current; Import JSON… is one tab stop", () => {
  fresh('<aside id="sidebar"></aside>');
  const session = new Session();
  const noop = () => {};
  const sidebar = new Sidebar($("#sidebar"), { onNew: noop, onSelect: noop, onDelete: noop, onExport: noop, onImport: noop, onClear: noop, onLoadMore: noop }, session);
  sidebar.setConversations([{ id: "c1", title: "One" }, { id: "c2", title: "Two" }]);
  session.set({ conversationId: "c2" });
  assert.deepEqual([...document.querySelectorAll('[aria-current="true"]')].map((b) => b.closest("li").dataset.id), ["c2"]);
  assert.equal($("#import-file").tabIndex, -1);
  assert.equal($("#import-label").tabIndex, 0);
});

test("revoked devices are folded away under the active ones", async () => {
  const session = new Session({ device: { deviceId: "me", name: "Laptop", fingerprint: "AAAA" } });
  const devices = [
    { device_id: "me", name: "Laptop", fingerprint: "AAAA", status: "active" },
    { device_id: "old1", name: "Old phone", fingerprint: "BBBB", status: "revoked" },
    { device_id: "old2", name: "Older phone", fingerprint: "CCCC", status: "revoked" },
  ];
  const actions = new DevicesController({ api: { async listDevices() { return { devices }; } }, session, report, onForget: () => {}, onRevokedSelf: () => {} });
  const panel = new DevicesPanel({ actions });
  await panel.open();
  assert.deepEqual([...$("#device-list").children].map((li) => li.dataset.id), ["me"]);
  assert.deepEqual([...$("#revoked-device-list").children].map((li) => li.dataset.id), ["old1", "old2"]);
  assert.equal($("#revoked-devices").hidden, false);
  assert.equal($("#revoked-devices").open, false);
  assert.equal($("#revoked-devices-summary").textContent, "Revoked devices (2)");
});
