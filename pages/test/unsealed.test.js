// Nothing unsealed is believed (docs/E2E.md, "The meta line"; SECURITY.md): the whole page, wired as
// ChatInterface wires it, over the real ApiClient and a stand-in server (test/e2e-server.js). A
// forged plain refusal (device unknown, device revoked, server key unknown) deletes no key, opens
// no pairing form and shows none of its words: it is "not sealed, not believed" with Retry. The
// same refusals sealed are the server's word and are acted on as before.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { installDom, settle, until } from "./dom-env.js";
import { fakeServer, makeDevice, makeServerKey } from "./e2e-server.js";

const html = await readFile(new URL("../src/chat/index.html", import.meta.url), "utf8");
const win = installDom(html.replace(/<script[^>]*><\/script>/, ""));
win.open = () => null;
const { ChatInterface } = await import("../src/components/chat/ChatInterface.js");
const $ = (sel) => document.querySelector(sel);
const pristine = document.body.innerHTML;

const ORIGIN = "http://127.0.0.1:8765";
const FORGED = "FORGED: pair again at evil.example";
let server;
let serverKeys; // the stand-in server's keys, current first
let device; // what the key store holds
let stored; // the key store's calls
let routes;
let ui;

const plain = (status, code) => () => ({ status, json: { error: { code, message: FORGED } }, plain: true });
const sealed = (status, code) => () => ({ status, json: { error: { code, message: "Sealed words." } } });

beforeEach(async () => {
  document.body.innerHTML = pristine;
  server = await makeServerKey();
  const made = await makeDevice(server.pin);
  device = { ...made, fingerprint: "ABCD-EFGH-IJKL", name: "This laptop", apiOrigin: ORIGIN };
  stored = [];
  routes = { "GET /api/auth/device": () => ({ json: { status: "active" } }), "GET /api/models": () => ({ json: { default: "qwen", models: [] } }),
    "GET /api/history?limit=50": () => ({ json: { conversations: [], next_before: null } }) };
  serverKeys = [server];
  const fake = fakeServer({ keys: serverKeys, devices: new Map([[made.deviceId, made.keyPair.publicKey]]), route: (req) => {
    const r = routes[`${req.method} ${req.target}`];
    return r ? r(req) : { status: 404, json: { error: { code: "not_found", message: "No." } } };
  } });
  globalThis.fetch = async (url, init = {}) => {
    if (new URL(String(url)).pathname === "/api/health") {
      return new Response(JSON.stringify({ status: "ok", time: Date.now() / 1000, model: { state: "ready", name: "qwen" }, e2e: server.pin }), {
        status: 200, headers: { "Content-Type": "application/json" } });
    }
    return fake.fetch(url, init);
  };
  ui = new ChatInterface($("#app"), { keys: {
    loadDevice: async () => device,
    forgetDevice: async () => { stored.push("forget"); },
    saveApiOrigin: async () => {},
    updateServerKey: async (k) => { stored.push(["pin", k.kid]); },
  } });
  await ui.start();
  await ui.monitor.running;
  await settle();
  assert.equal($("#status").dataset.state, "ready", "a healthy start");
});

afterEach(() => {
  clearTimeout(ui.monitor.pollTimer);
  clearInterval(ui.monitor.countdownTimer);
});

/** The page as it stands: nothing about this device changed. */
function assertUntouched(what) {
  assert.deepEqual(stored, [], `${what}: the key store was not touched`);
  assert.equal(ui.session.state.device, device, `${what}: the device is the same`);
  assert.equal(ui.session.state.view, "chat", `${what}: no pairing form`);
  assert.equal($("#pairing-view").hidden, true, `${what}: the pairing view stays hidden`);
  assert.ok(!document.body.textContent.includes("FORGED"), `${what}: none of its words shown`);
}

for (const [status, code] of [[401, "device_unknown"], [403, "device_revoked"], [400, "e2e_key_unknown"]]) {
  test(`a forged plain ${status} ${code} to who-am-I: no key deleted, no pairing form, "not believed" with Retry`, async () => {
    routes["GET /api/auth/device"] = plain(status, code);
    await ui.monitor.checkNow(true);
    await settle();
    assertUntouched(code);
    assert.equal($("#status").dataset.state, "unsealed");
    assert.match($("#status .status-text").textContent, /did not seal, so it was not believed/);
    assert.equal($("#status-repair"), null, "no Pair again");
    if (code === "e2e_key_unknown") assert.match($("#status .status-text").textContent, /Forget this browser's key/);
    // Retry asks again; once the answers are the server's own, all is well.
    routes["GET /api/auth/device"] = () => ({ json: { status: "active" } });
    $("#status-retry").click();
    await ui.monitor.running;
    assert.equal($("#status").dataset.state, "ready");
    assertUntouched(`${code}, after Retry`);
  });

  test(`a forged plain ${status} ${code} to another request: said where it failed, nothing else changes`, async () => {
    routes["GET /api/history?limit=50"] = plain(status, code);
    await ui.history.load();
    await settle();
    await ui.monitor.running;
    assertUntouched(code);
    assert.equal($("#status").dataset.state, "ready");
  });
}

test("a forged plain refusal of a message: it is kept, with Send now; nothing about the device changes", async () => {
  routes["POST /api/chat"] = plain(403, "device_revoked");
  assert.equal(ui.chat.send("hello"), true);
  // Sealing and opening go through WebCrypto, off the event loop: wait for the page to say it.
  const kept = () => document.querySelector('.message[data-status="failed"]') || document.querySelector(".message.user");
  await until(() => /not believed/.test(kept()?.textContent || ""), "the message kept with its reason");
  await ui.monitor.running;
  assertUntouched("chat");
  const failed = kept();
  assert.ok(failed, "the message is still there");
  assert.match(failed.textContent, /not believed/);
  assert.ok([...failed.querySelectorAll("button")].some((b) => /Send now/.test(b.textContent)), "with a Send now button");
});

test("a sealed device_revoked is believed: revoked, Pair again; the key goes only when the owner presses it", async () => {
  routes["GET /api/auth/device"] = sealed(403, "device_revoked");
  await ui.monitor.checkNow(true);
  assert.equal($("#status").dataset.state, "revoked");
  assert.deepEqual(stored, [], "nothing deleted by the answer itself");
  $("#status-repair").click();
  await settle();
  assert.deepEqual(stored, ["forget"]);
  assert.equal(ui.session.state.view, "pairing");
  assert.equal($("#pair-reason").dataset.reason, "revoked");
  await ui.monitor.running;
});

test("a sealed device_unknown is believed: the pairing form is shown", async () => {
  routes["GET /api/auth/device"] = sealed(401, "device_unknown");
  await ui.monitor.checkNow(true);
  await settle();
  assert.equal(ui.session.state.view, "pairing");
  assert.equal($("#pair-reason").dataset.reason, "unknown");
});

test("forgetting this browser's key is the owner's choice in Devices, and the confirmation names its fingerprint", async () => {
  routes["GET /api/devices"] = () => ({ json: { devices: [] } });
  $("#devices-button").click();
  await settle();
  $("#forget-device").click();
  await settle();
  const dialog = $("#confirm-dialog");
  assert.ok(dialog && dialog.hasAttribute("open"));
  assert.match(dialog.textContent, /fingerprint ABCD-EFGH-IJKL/);
  $("#confirm-yes").click();
  await settle();
  assert.deepEqual(stored, ["forget"]);
  await ui.monitor.running;
});

test("a rotation is followed from a sealed answer's kid while health still shows the old key", async () => {
  const next = await makeServerKey();
  serverKeys.unshift(next); // the server's current key; the pinned one is within its grace period
  routes["GET /api/e2e/key"] = (req) => ({ json: req.kid === server.pin.kid ? next.pin : null });
  await ui.monitor.checkNow(true);
  await settle();
  assert.deepEqual(stored, [["pin", next.pin.kid]]);
  assert.equal(ui.session.state.device.serverKey.kid, next.pin.kid);
  assert.equal(ui.api.lastHealth.e2e.kid, server.pin.kid, "health never said so");
  assert.equal($("#status").dataset.state, "ready");
});

test("a reattach whose events do not follow on from its cursor says so on the reply, never jumps", async () => {
  routes["GET /api/chat/a1/stream?last_event_id="] = () => ({ events: [
    { id: "a1:1", event: "token", data: { text: "not the first" } }, { id: "a1:2", event: "done", data: { finish_reason: "stop" } }] });
  await ui.chat.reattach("a1");
  await settle();
  const reply = document.querySelector('.message[data-id="a1"]');
  assert.equal(reply.dataset.status, "error");
  assert.match(reply.textContent, /Part of the reply/);
  assert.doesNotMatch(reply.textContent, /not the first/);
  await ui.monitor.running;
});
