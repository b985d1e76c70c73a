import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BACKOFF_MAX_MS,
  POLL_LOADING_MS,
  POLL_OK_MS,
  START,
  afterRequestError,
  checking,
  countdown,
  decide,
  nextBackoff,
  offline,
  retryNow,
  revoked,
} from "../src/lib/connection.js";
import { ApiError, E2EError, NetworkError } from "../src/lib/errors.js";
import { STATES } from "../src/components/chat/ConnectionStatus.js";

const LOCAL = "http://127.0.0.1:8765";
const REMOTE = "https://chat-api.example.org";
const healthy = (model = { state: "ready", name: "qwen" }) => ({ status: "ok", model });
const buttons = (d) => d.status.actions.map((a) => `${a.id}:${a.label}:${a.run}`);
const ready = decide(START, { health: healthy(), me: { status: "active" }, apiOrigin: LOCAL });

test("before the first answer the page says Connecting…, and nothing new afterwards", () => {
  assert.deepEqual(checking(START), { state: "connecting", text: "Connecting…", note: "", actions: [] });
  assert.equal(checking(ready.memory), null);
});

test("a healthy server and a known device: ready, the message box on, the next check in 15 s", () => {
  assert.equal(ready.status.state, "ready");
  assert.equal(ready.status.text, "Ready — qwen");
  assert.deepEqual(ready.status.actions, []);
  assert.equal(ready.delayMs, POLL_OK_MS);
  assert.equal(ready.countdown, false);
  assert.deepEqual(ready.effects, { input: true, ready: true });
  assert.deepEqual(ready.memory, { state: "ready", backoffMs: 0, wasReady: true });
});

test("no model state or no name still reads as ready", () => {
  assert.equal(decide(START, { health: {} }).status.text, "Ready — model");
  assert.equal(decide(START, { health: healthy({ state: "ready" }) }).status.text, "Ready — model");
});

test("a loading model: checked again every 3 s", () => {
  const d = decide(START, { health: healthy({ state: "loading", name: "qwen" }) });
  assert.equal(d.status.state, "loading");
  assert.equal(d.status.text, "Model loading…");
  assert.equal(d.delayMs, POLL_LOADING_MS);
});

test("a model that failed: the server's sentence and a Retry now button", () => {
  const d = decide(START, { health: healthy({ state: "error", error: "model.bin is not a GGUF file" }) });
  assert.equal(d.status.state, "model_error");
  assert.equal(d.status.text, "Model failed: model.bin is not a GGUF file");
  assert.deepEqual(buttons(d), ["status-retry:Retry now:retry"]);
  assert.equal(d.delayMs, POLL_OK_MS);
  assert.equal(decide(START, { health: healthy({ state: "error" }) }).status.text, "Model failed: the server gave no reason");
  assert.equal(decide(START, { health: healthy({ state: "disabled" }) }).status.text, "Model failed: no model is configured on the server");
});

test("the pairing form is shown: unpaired or revoked, backoff reset, no whoami needed", () => {
  const mem = { state: "unreachable", backoffMs: 8000, wasReady: false };
  const first = decide(mem, { health: healthy(), pairing: "first" });
  assert.equal(first.status.state, "unpaired");
  assert.equal(first.status.text, "Device not paired");
  assert.equal(first.memory.backoffMs, 0);
  assert.equal(first.delayMs, POLL_OK_MS);
  const again = decide(mem, { health: healthy(), pairing: "revoked" });
  assert.equal(again.status.state, "revoked");
  assert.equal(again.status.text, "Device revoked");
  assert.deepEqual(again.status.actions, []);
});

test("browser offline: no timer, the online event brings the next check", () => {
  for (const d of [offline(START), decide(START, { offline: true }), decide(START, { error: new NetworkError("offline") })]) {
    assert.equal(d.status.state, "offline");
    assert.equal(d.status.text, "Browser offline");
    assert.equal(d.delayMs, null);
  }
});

test("Access wants a sign-in: sign-in and Retry buttons, retried with a countdown", () => {
  for (const error of [new NetworkError("access"), new ApiError(403, "access_denied", "denied")]) {
    const d = decide(START, { error, apiOrigin: REMOTE });
    assert.equal(d.status.state, "access");
    assert.equal(d.status.text, "Cloudflare Access sign-in needed");
    assert.deepEqual(buttons(d), ["access-signin:Sign in (new tab):signin", "status-retry:Retry:retry"]);
    assert.equal(d.countdown, true);
    assert.equal(d.delayMs, 1000);
  }
  // who-am-I refused by Access after a good health answer: the same.
  const d = decide(START, { health: healthy(), error: new ApiError(403, "access_denied", "denied"), apiOrigin: REMOTE });
  assert.equal(d.status.state, "access");
});

test("nothing answers on the owner's own computer: start the server", () => {
  const d = decide(START, { error: new NetworkError("unreachable"), apiOrigin: LOCAL });
  assert.equal(d.status.state, "unreachable");
  assert.equal(d.status.text, "Server not reachable — start it with `privchat serve`");
  assert.deepEqual(buttons(d), ["status-retry:Retry now:retry"]);
});

test("through a tunnel: the computer behind it, or the network", () => {
  const tunnel = decide(START, { error: new NetworkError("tunnel"), apiOrigin: REMOTE });
  assert.equal(tunnel.status.state, "tunnel");
  assert.equal(tunnel.status.text, "Your computer is not reachable through the tunnel: is it awake, with privchat and cloudflared running?");
  assert.ok(!tunnel.status.text.toLowerCase().includes("sign"));
  assert.deepEqual(buttons(tunnel), ["status-retry:Retry now:retry", "tunnel-signin:Sign in again (new tab):signin"]);
  const net = decide(START, { error: new NetworkError("unreachable"), apiOrigin: REMOTE });
  assert.equal(net.status.state, "unreachable");
  assert.equal(net.status.text, "The API could not be reached: check the network connection");
});

test("a first failure after ready is a blip (reconnecting); a second one says why", () => {
  const error = new NetworkError("unreachable");
  const blip = decide(ready.memory, { error, apiOrigin: LOCAL });
  assert.equal(blip.status.state, "reconnecting");
  assert.equal(blip.status.text, "Reconnecting…");
  assert.deepEqual(buttons(blip), ["status-retry:Retry now:retry"]);
  assert.equal(blip.delayMs, 1000);
  const persists = decide(blip.memory, { error, apiOrigin: LOCAL });
  assert.equal(persists.status.state, "unreachable");
  assert.equal(persists.delayMs, 1500); // a server on this machine: the backoff stops at 1.5 s
});

test("the server answers badly: reconnecting with its message, Retry-After sets the step", () => {
  const d = decide(START, { error: new ApiError(503, "busy", "The server is busy.", { retryAfter: 5 }), apiOrigin: LOCAL });
  assert.equal(d.status.state, "reconnecting");
  assert.equal(d.status.text, "Reconnecting… (The server is busy.)");
  assert.equal(d.delayMs, 5000);
  const long = decide(START, { error: new ApiError(503, "busy", "busy", { retryAfter: 600 }) });
  assert.equal(long.delayMs, BACKOFF_MAX_MS);
});

test("backoff doubles from 1 s to 30 s; a Retry button starts it over", () => {
  let mem = START;
  const delays = [];
  for (let i = 0; i < 7; i++) {
    const d = decide(mem, { error: new NetworkError("unreachable"), apiOrigin: REMOTE });
    delays.push(d.delayMs);
    mem = d.memory;
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(retryNow(mem).backoffMs, 0);
  assert.equal(nextBackoff(0), 1000);
  assert.equal(nextBackoff(0, 3), 3000);
  // A good answer resets it.
  assert.equal(decide(mem, { health: healthy() }).memory.backoffMs, 0);
});

test("this device revoked (who-am-I says so, or a request was refused): Pair again, no timer, input off", () => {
  const cases = [
    decide(ready.memory, { health: healthy(), me: { status: "revoked" } }),
    decide(ready.memory, { health: healthy(), error: new ApiError(401, "device_revoked", "revoked") }),
    revoked(ready.memory),
  ];
  for (const d of cases) {
    assert.equal(d.status.state, "revoked");
    assert.equal(d.status.text, "Device revoked");
    assert.deepEqual(buttons(d), ["status-repair:Pair again:repair"]);
    assert.equal(d.delayMs, null);
    assert.deepEqual(d.effects, { input: false });
  }
});

test("the server does not know this key: unpaired, and the pairing form is shown", () => {
  const d = decide(ready.memory, { health: healthy(), error: new ApiError(401, "device_unknown", "unknown") });
  assert.equal(d.status.state, "unpaired");
  assert.equal(d.status.text, "Device not paired");
  assert.deepEqual(d.effects, { pairing: "unknown" });
  assert.equal(d.delayMs, POLL_OK_MS);
});

test("countdown: it replaces Reconnecting…, elsewhere it is a note", () => {
  const blip = decide(ready.memory, { error: new NetworkError("unreachable"), apiOrigin: LOCAL });
  assert.equal(countdown(blip.status, 3).text, "Reconnecting in 3s…");
  assert.equal(countdown(blip.status, 3).note, "");
  const down = decide(START, { error: new NetworkError("unreachable"), apiOrigin: LOCAL });
  assert.equal(countdown(down.status, 2).text, down.status.text);
  assert.equal(countdown(down.status, 2).note, "Retrying in 2s…");
});

test("a request elsewhere failed: the page follows a revoked key or Access, rechecks on network errors", () => {
  assert.equal(afterRequestError(ready.memory, new ApiError(401, "device_revoked", "x")).status.state, "revoked");
  assert.equal(afterRequestError(ready.memory, new ApiError(401, "device_unknown", "x")).effects.pairing, "unknown");
  assert.equal(afterRequestError(ready.memory, new ApiError(403, "access_denied", "x")).status.state, "access");
  assert.equal(afterRequestError(ready.memory, new NetworkError("tunnel")), "recheck");
  assert.equal(afterRequestError(ready.memory, new NetworkError("interrupted")), "recheck");
  assert.equal(afterRequestError(ready.memory, new NetworkError("aborted")), null);
  assert.equal(afterRequestError(ready.memory, new ApiError(404, "not_found", "gone")), null);
  const old = afterRequestError(ready.memory, new ApiError(400, "e2e_version_old", "x"));
  assert.equal(old.status.state, "outdated");
  assert.deepEqual(old.status.actions.map((a) => a.run), ["reload"]);
  assert.equal(old.delayMs, null, "asking again cannot help: only a reload does");
  assert.equal(old.effects.input, false);
});

test("every status the page shows comes out of the machine", () => {
  const seen = new Set(["connecting"]);
  const all = [
    ready,
    decide(START, { health: healthy({ state: "loading" }) }),
    decide(START, { health: healthy({ state: "error" }) }),
    decide(START, { error: new NetworkError("unreachable"), apiOrigin: LOCAL }),
    decide(START, { error: new NetworkError("tunnel"), apiOrigin: REMOTE }),
    decide(START, { error: new NetworkError("csp"), apiOrigin: LOCAL }),
    decide(START, { error: new NetworkError("access") }),
    decide(START, { health: healthy(), pairing: "first" }),
    revoked(START),
    decide(START, { error: new E2EError("e2e_key_unpinned") }),
    decide(START, { error: new E2EError("e2e_unsealed_refusal", "", { status: 401, hint: "device_unknown" }) }),
    decide(START, { error: new ApiError(400, "e2e_version_old", "Reload.") }),
    offline(START),
    decide(ready.memory, { error: new NetworkError("unreachable") }),
  ];
  for (const d of all) seen.add(d.status.state);
  assert.deepEqual([...seen].sort(), [...STATES].sort());
});

test("the page's own CSP blocks the API: said with the origin, no retry timer (only a rebuilt page helps)", () => {
  const d = decide(ready.memory, { error: new NetworkError("csp", { origin: "http://127.0.0.1:9765" }), apiOrigin: "http://127.0.0.1:9765" });
  assert.equal(d.status.state, "csp", "not the first-blip Reconnecting…: the cause is known");
  assert.match(d.status.text, /does not allow http:\/\/127\.0\.0\.1:9765/);
  assert.equal(d.delayMs, null);
  assert.deepEqual(d.status.actions.map((a) => a.run), ["reload"]);
});

test("the machine is pure: the memory passed in is not changed", () => {
  const mem = Object.freeze({ ...ready.memory });
  decide(mem, { error: new NetworkError("unreachable") });
  assert.deepEqual(mem, ready.memory);
});

test("once the model list is known the status names the chosen model, not health's configured one", () => {
  const chosen = (model) => decide(START, { health: healthy(), me: { status: "active" }, model });
  assert.equal(chosen({ name: "big", label: "Big model", state: "ready" }).status.text, "Ready — Big model");
  assert.equal(chosen({ name: "other", state: "unloaded" }).status.text, "Ready — other", "loads with the first message");
  const loading = chosen({ name: "other", state: "loading" });
  assert.equal(loading.status.state, "loading");
  assert.equal(loading.status.text, "Loading other…");
  const down = chosen({ name: "big", label: "Big model", state: "unreachable", error: null });
  assert.equal(down.status.state, "model_error");
  assert.equal(down.status.text, "Model failed: Big model does not answer");
  assert.deepEqual(down.effects, { input: true, ready: true }, "another model can still be picked");
  assert.equal(chosen({ name: "big", state: "error", error: "upstream said 500" }).status.text, "Model failed: upstream said 500");
  assert.equal(chosen(null).status.text, "Ready — qwen", "before the list: health's model");
});

test("an unsealed refusal changes nothing about the device: its own state, Retry now, and a retry with backoff", () => {
  for (const hint of ["device_unknown", "device_revoked", "e2e_key_unknown", null]) {
    const err = new E2EError("e2e_unsealed_refusal", "", { status: 401, hint });
    for (const memory of [START, ready.memory]) {
      const d = decide(memory, { health: healthy(), error: err });
      assert.equal(d.status.state, "unsealed", `${hint}`);
      assert.match(d.status.text, /not believed/, "said at once, not hidden behind Reconnecting…");
      assert.deepEqual(d.status.actions.map((a) => a.run), ["retry"]);
      assert.deepEqual(d.effects, {}, "no pairing form, the message box unchanged");
      assert.equal(d.countdown, true);
      assert.ok(d.delayMs > 0);
    }
    assert.equal(afterRequestError(ready.memory, err), null, `${hint}: a request elsewhere changes nothing`);
  }
});
