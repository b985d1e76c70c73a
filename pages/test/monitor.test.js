import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh } from "./dom-env.js";
import { ConnectionMonitor } from "../src/app/monitor.js";
import { ConnectionStatus } from "../src/components/chat/ConnectionStatus.js";
import { Session } from "../src/lib/session.js";
import { ApiError, E2EError, NetworkError } from "../src/lib/errors.js";
import { fakeClock } from "./fake-clock.js";
import { BACKOFF_LOOPBACK_MAX_MS, POLL_OK_MS } from "../src/lib/connection.js";

installDom();
const $ = (sel) => document.querySelector(sel);


let clock;
let api;
let session;
let effects;
let monitor;
let online;

beforeEach(() => {
  fresh(`<div id="status"><span class="status-text"></span></div><span id="status-note"></span><div id="status-actions"></div>`);
  clock = fakeClock(1_000_000);
  online = true;
  api = {
    healthCalls: 0,
    whoCalls: 0,
    healthError: null,
    whoError: null,
    onHealth: null,
    model: { state: "ready", name: "qwen" },
    async health() {
      this.healthCalls++;
      if (this.onHealth) this.onHealth();
      if (this.healthError) throw this.healthError;
      return { model: this.model };
    },
    keyError: null,
    async followServerKey() {
      if (this.keyError) throw this.keyError;
      return null;
    },
    async whoAmI() {
      this.whoCalls++;
      if (this.whoError) throw this.whoError;
      return { status: "active" };
    },
  };
  session = new Session({ apiOrigin: "http://127.0.0.1:8765", device: { deviceId: "d" }, view: "chat" });
  effects = [];
  const status = new ConnectionStatus($("#status"), $("#status-actions"));
  monitor = new ConnectionMonitor({ api, session, status, onEffects: (e) => effects.push(e), timers: clock, now: clock.now, online: () => online });
});

const state = () => $("#status").dataset.state;
const text = () => $("#status").textContent;
const note = () => $("#status-note").textContent;

test("a healthy server: ready, the device checked, the next check in 15 s", async () => {
  await monitor.checkNow();
  assert.equal(state(), "ready");
  assert.equal(text(), "Ready — qwen");
  assert.equal(api.whoCalls, 1);
  assert.deepEqual(effects, [{ input: true, ready: true }]);
  clock.advance(14_999);
  assert.equal(api.healthCalls, 1);
  clock.advance(1);
  assert.equal(api.healthCalls, 2);
});

test("the server is down: says so, counts down, retries with backoff, and recovers", async () => {
  api.healthError = new NetworkError("unreachable");
  await monitor.checkNow();
  assert.equal(state(), "unreachable");
  assert.equal(text(), "Server not reachable — start it with privchat serve"); // the command is drawn as <code>
  assert.equal(note(), "Retrying in 1s…");
  clock.advance(1000);
  await monitor.running;
  assert.equal(api.healthCalls, 2);
  assert.equal(note(), "Retrying in 2s…");
  clock.advance(1000);
  assert.equal(note(), "Retrying in 1s…");
  api.healthError = null;
  clock.advance(1000);
  await monitor.running;
  assert.equal(state(), "ready");
  assert.equal(note(), "");
});

test("a blip after ready counts down in the sentence itself", async () => {
  await monitor.checkNow();
  api.healthError = new NetworkError("unreachable");
  await monitor.checkNow();
  assert.equal(state(), "reconnecting");
  assert.equal(text(), "Reconnecting in 1s…");
  assert.ok($("#status-retry"));
});

test("one check at a time; Retry starts the backoff over", async () => {
  session.set({ apiOrigin: "https://chat-api.example.org" }); // tunnelled: the backoff grows past 1.5 s
  api.healthError = new NetworkError("unreachable");
  await monitor.checkNow();
  await monitor.checkNow();
  await monitor.checkNow();
  assert.equal(note(), "Retrying in 4s…");
  const a = monitor.checkNow();
  const b = monitor.checkNow();
  await Promise.all([a, b]);
  assert.equal(api.healthCalls, 4);
  await monitor.checkNow(true);
  assert.equal(note(), "Retrying in 1s…");
});

test("the pairing form is read after the server answered (pairing finished meanwhile)", async () => {
  session.set({ view: "pairing", pairReason: "first", device: null });
  api.onHealth = () => session.set({ view: "chat", pairReason: null, device: { deviceId: "new" } });
  await monitor.checkNow();
  assert.equal(api.whoCalls, 1);
  assert.equal(state(), "ready");
});

test("the pairing form is shown: unpaired, no who-am-I", async () => {
  session.set({ view: "pairing", pairReason: "first", device: null });
  await monitor.checkNow();
  assert.equal(state(), "unpaired");
  assert.equal(api.whoCalls, 0);
});

test("revoked: from who-am-I or from a request elsewhere; no more checks until re-paired", async () => {
  api.whoError = new ApiError(401, "device_revoked", "revoked");
  await monitor.checkNow();
  assert.equal(state(), "revoked");
  assert.ok($("#status-repair"));
  assert.deepEqual(effects.at(-1), { input: false });
  assert.equal(clock.pending.size, 0);
  api.whoError = null;
  await monitor.checkNow();
  monitor.noteError(new ApiError(401, "device_revoked", "revoked"));
  assert.equal(state(), "revoked");
});

test("forged plain refusals of who-am-I (device unknown, revoked, key unknown) open no pairing form and offer Retry", async () => {
  for (const [status, hint] of [[401, "device_unknown"], [403, "device_revoked"], [400, "e2e_key_unknown"]]) {
    effects.length = 0;
    api.whoError = new E2EError("e2e_unsealed_refusal", "", { status, hint });
    await monitor.checkNow(true);
    assert.equal(state(), "unsealed", hint);
    assert.match(text(), /not believed/);
    assert.equal($("#status-repair"), null, "no Pair again");
    assert.ok($("#status-retry"));
    assert.deepEqual(effects.at(-1), {}, "no pairing form, the message box as it was");
    assert.equal(clock.pending.size > 0, true, "checked again later");
    assert.equal(session.state.view, "chat");
    assert.deepEqual(session.state.device, { deviceId: "d" });
  }
});

test("health is never what moves the pinned key: the monitor asks who-am-I (sealed) only", async () => {
  let followed = 0;
  api.followServerKey = async () => { followed++; };
  await monitor.checkNow();
  assert.equal(followed, 0);
  assert.equal(api.whoCalls, 1);
});

test("a network failure elsewhere triggers a check; the offline browser waits for the network", async () => {
  monitor.noteError(new NetworkError("tunnel"));
  await monitor.running;
  assert.equal(api.healthCalls, 1);
  online = false;
  await monitor.checkNow();
  assert.equal(state(), "offline");
  assert.equal(text(), "Browser offline");
  assert.equal(clock.pending.size, 0);
  assert.equal(api.healthCalls, 1);
});

test("the server does not know the key: the pairing form is asked for", async () => {
  api.whoError = new ApiError(401, "device_unknown", "unknown");
  await monitor.checkNow();
  assert.equal(state(), "unpaired");
  assert.deepEqual(effects.at(-1), { pairing: "unknown" });
});

test("the status names the chosen model, and another choice shows at once without asking the server", async () => {
  let entry = null;
  const status = new ConnectionStatus($("#status"), $("#status-actions"));
  monitor = new ConnectionMonitor({ api, session, status, onEffects: (e) => effects.push(e), timers: clock, now: clock.now,
    online: () => online, chosenModel: () => entry });
  const before = text();
  monitor.modelChanged(); // before any check: nothing to redraw
  assert.equal(text(), before);
  await monitor.checkNow();
  assert.equal(text(), "Ready — qwen");
  entry = { name: "big", label: "Big model", state: "ready" };
  monitor.modelChanged();
  assert.equal(text(), "Ready — Big model");
  entry = { name: "big", label: "Big model", state: "unreachable" };
  monitor.modelChanged();
  assert.equal(state(), "model_error");
  assert.equal(api.healthCalls, 1, "no request for a redraw");
  assert.equal(effects.length, 1, "a redraw changes no effects");
  api.healthError = new NetworkError("down");
  await monitor.checkNow();
  const down = text();
  monitor.modelChanged();
  assert.equal(text(), down, "while the server is not answering, a model change does not claim it is ready");
});

test("a model list that says loading just after a ready check brings the next check within the loopback cap, not 15 s later", async () => {
  let entry = null;
  session.set({ apiOrigin: "http://127.0.0.1:8765" });
  const status = new ConnectionStatus($("#status"), $("#status-actions"));
  monitor = new ConnectionMonitor({ api, session, status, onEffects: (e) => effects.push(e), timers: clock, now: clock.now,
    online: () => online, chosenModel: () => entry });
  await monitor.checkNow();
  assert.equal(state(), "ready");
  const ready = [...clock.pending.values()].map((t) => t.at - clock.now());
  assert.deepEqual(ready, [POLL_OK_MS], "a ready server is asked again after 15 s");
  // The model list, fetched once the page is ready, says the chosen model is still loading.
  entry = { name: "qwen", state: "loading" };
  monitor.modelChanged();
  assert.equal(state(), "loading");
  const soon = [...clock.pending.values()].map((t) => t.at - clock.now());
  assert.deepEqual(soon, [BACKOFF_LOOPBACK_MAX_MS], "loading on this machine: asked again within the loopback cap");
  // The control: a redraw that keeps the state keeps the timer.
  entry = { name: "qwen", label: "Qwen", state: "loading" };
  monitor.modelChanged();
  assert.deepEqual([...clock.pending.values()].map((t) => t.at - clock.now()), [BACKOFF_LOOPBACK_MAX_MS]);
});

// A server the page's own CSP blocks is not a stopped server.
test("a CSP violation for the API origin: the page names the origin its policy lacks, not a stopped server", async () => {
  const { forgetCspBlocks } = await import("../src/lib/csp.js");
  forgetCspBlocks();
  api.healthError = new NetworkError("unreachable"); // what fetch says for a blocked request: nothing more
  await monitor.checkNow();
  assert.equal(state(), "unreachable");
  const violation = (blockedURI, effectiveDirective = "connect-src") => {
    const event = new window.Event("securitypolicyviolation");
    Object.assign(event, { blockedURI, effectiveDirective, violatedDirective: effectiveDirective });
    document.dispatchEvent(event);
  };
  monitor.listen(window, document);
  violation("https://elsewhere.example/x"); // another origin: not the API's, nothing changes
  violation("http://127.0.0.1:8765/api/health", "img-src");
  assert.equal(state(), "unreachable");
  const calls = api.healthCalls;
  violation("http://127.0.0.1:8765/api/health");
  assert.equal(state(), "csp");
  assert.match(text(), /does not allow http:\/\/127\.0\.0\.1:8765/);
  assert.match(text(), /privchat tunnel setup/);
  assert.match(text(), /rebuild the page/);
  assert.doesNotMatch(text(), /start it with/);
  assert.equal($("#status-reload").textContent, "Reload page");
  assert.equal(api.healthCalls, calls); // said without asking the server again
  assert.equal(note(), ""); // no retry countdown: asking again cannot help
  forgetCspBlocks();
});
