// ApiClient speaking docs/E2E.md to a stand-in server (test/e2e-server.js, the page's own e2e.js in
// reverse): sealed requests signed over the sealed bytes and the Privchat-E2E header, opened
// answers and streams, each broken rule's error, pairing proof and key confirmation, pinning and
// rotation.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { ApiClient } from "../src/lib/api.js";
import { ApiError, E2EError, StreamError } from "../src/lib/errors.js";
import { keyConfirmation, pairingProof } from "../src/lib/e2e.js";
import { fakeServer, flipBit, makeDevice, makeServerKey } from "./e2e-server.js";

const ORIGIN = "http://127.0.0.1:8765";
const isE2E = (code) => (err) => err instanceof E2EError && err.code === code;
const isApi = (code) => (err) => err instanceof ApiError && err.code === code;

let server; // {privateKey, pin}
let device;
let routes; // target -> (req) => answer
let health;

function install(keys = [server]) {
  const fake = fakeServer({ keys, devices: new Map([[device.deviceId, device.keyPair.publicKey]]), route: (req) => {
    const r = routes[`${req.method} ${req.target}`] || routes[req.target];
    return r ? r(req) : { status: 404, json: { error: { code: "not_found", message: "No such thing." } } };
  } });
  globalThis.fetch = async (url, init = {}) => {
    if (new URL(String(url)).pathname === "/api/health") return new Response(JSON.stringify(health), { status: 200, headers: { "Content-Type": "application/json" } });
    return fake.fetch(url, init);
  };
  return fake;
}

beforeEach(async () => {
  server = await makeServerKey();
  device = await makeDevice(server.pin);
  routes = {};
  health = { status: "ok", time: Date.now() / 1000, model: { state: "ready" }, e2e: server.pin };
});

const client = () => new ApiClient(ORIGIN, { getDevice: async () => device });

test("a JSON request goes sealed and signed over the sealed bytes; its sealed answer is opened", async () => {
  const fake = install();
  routes["PUT /api/settings"] = (req) => ({ json: { saved: req.json } });
  const out = await client().putSettings({ system_prompt: "MARKER-secret" });
  assert.deepEqual(out, { saved: { system_prompt: "MARKER-secret" } });
  const req = fake.seen[0];
  assert.equal(req.headers["Content-Type"], "application/privchat-e2e");
  assert.ok(!Buffer.from(req.body).toString("latin1").includes("MARKER"));
  assert.match(req.headers["Privchat-E2E"], /^kid="[^"]+", enc=:[^:]+:$/);
  assert.match(req.headers["Signature-Input"], /^sig1=\("@method" "@path" "@query" "content-digest" "privchat-e2e"\);/);
});

test("a request without a body sends none, and its answer is still sealed and opened", async () => {
  const fake = install();
  routes["GET /api/history?limit=50"] = () => ({ json: { conversations: [{ id: "c1", title: "MARKER" }] } });
  const out = await client().listConversations();
  assert.equal(out.conversations[0].title, "MARKER");
  assert.equal(fake.seen[0].body, null);
  assert.equal(fake.seen[0].headers["Content-Type"], undefined);
});

test("a 2xx answer without Privchat-E2E-Nonce is e2e_unsealed", async () => {
  install();
  routes["GET /api/devices"] = () => ({ json: { devices: [] }, plain: true });
  await assert.rejects(client().listDevices(), isE2E("e2e_unsealed"));
});

test("an error status may come plain (the gate) or sealed (the handler): both are ApiErrors", async () => {
  install();
  routes["GET /api/devices"] = () => ({ status: 403, json: { error: { code: "device_revoked", message: "Revoked." } }, plain: true });
  await assert.rejects(client().listDevices(), isApi("device_revoked"));
  routes["GET /api/devices"] = () => ({ status: 429, json: { error: { code: "rate_limited", message: "Slow down." } }, headers: { "Retry-After": "3" } });
  const err = await client().listDevices().catch((e) => e);
  assert.ok(isApi("rate_limited")(err), String(err));
  assert.equal(err.message, "Slow down.");
  assert.equal(err.retryAfter, 3);
  await assert.rejects(client().getConversation("nope"), isApi("not_found"));
});

test("a sealed answer with a flipped bit is e2e_response_invalid", async () => {
  install();
  routes["GET /api/settings"] = () => ({ json: { a: 1 }, flip: true });
  await assert.rejects(client().getSettings(), isE2E("e2e_response_invalid"));
});

test("the server refuses a request sealed to a key it does not hold: e2e_key_unknown", async () => {
  const other = await makeServerKey();
  install([other]);
  await assert.rejects(client().getSettings(), isApi("e2e_key_unknown"));
});

test("a device without a pinned server key sends nothing: e2e_key_unpinned", async () => {
  const fake = install();
  device = { ...device, serverKey: undefined };
  await assert.rejects(client().getSettings(), isE2E("e2e_key_unpinned"));
  assert.equal(fake.seen.length, 0);
});

test("an export's sealed body is opened into the Blob", async () => {
  install();
  routes["GET /api/history/export?format=markdown"] = () => ({ body: new TextEncoder().encode("# MARKER export"), headers: { "Content-Disposition": 'attachment; filename="x.md"' } });
  const { blob, filename } = await client().exportHistory("markdown");
  assert.equal(await blob.text(), "# MARKER export");
  assert.equal(filename, "x.md");
});

// ---------------------------------------------------------------- streams

function recorder() {
  const got = [];
  const push = (name) => (data, id) => got.push([name, id, data]);
  return {
    got,
    handlers: { onStart: push("start"), onToken: push("token"), onDone: push("done"), onError: (e, id) => got.push(["error", id, e]), onPing: () => got.push(["ping"]) },
  };
}

const events = (n = 3) => [
  { id: "a1:0", event: "start", data: { user_message_id: "u1", assistant_message_id: "a1" } },
  ...Array.from({ length: n - 2 }, (_, i) => ({ id: `a1:${i + 1}`, event: "token", data: { text: `MARK${i}` } })),
  { id: `a1:${n - 1}`, event: "done", data: { finish_reason: "stop" } },
];

test("a sealed stream: each event is opened and dispatched with the id from inside the seal", async () => {
  const fake = install();
  routes["POST /api/chat"] = () => ({ events: events(4), pings: true });
  const { got, handlers } = recorder();
  await client().chat({ message: "hello MARKER" }, handlers);
  assert.deepEqual(got.map((g) => g.slice(0, 2)), [["ping"], ["start", "a1:0"], ["token", "a1:1"], ["token", "a1:2"], ["done", "a1:3"]]);
  assert.equal(got[2][2].text, "MARK0");
  assert.equal(fake.seen[0].json.message, "hello MARKER");
});

test("the stream's error event is the final one and comes as a StreamError", async () => {
  install();
  routes["GET /api/chat/a1/stream?last_event_id=a1%3A0"] = () => ({ events: [{ id: "a1:1", event: "error", data: { code: "model_failed", message: "boom" } }] });
  const { got, handlers } = recorder();
  await client().attach({ assistantId: "a1", lastEventId: "a1:0" }, handlers);
  assert.equal(got[0][0], "error");
  assert.ok(got[0][2] instanceof StreamError);
  assert.equal(got[0][2].code, "model_failed");
});

for (const [name, tamper] of [
  ["dropped", (c) => [c[0], c[2], c[3]]],
  ["reordered", (c) => [c[0], c[2], c[1], c[3]]],
  ["replayed", (c) => [c[0], c[1], c[1], c[2], c[3]]],
  ["flipped", (c) => [c[0], Buffer.from(flipBit(Buffer.from(c[1], "base64url"), 3)).toString("base64url"), c[2], c[3]]],
]) {
  test(`a ${name} event is e2e_event_invalid and nothing after it is shown`, async () => {
    install();
    routes["POST /api/chat"] = () => ({ events: events(4), tamper });
    const { got, handlers } = recorder();
    await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_event_invalid"));
    assert.ok(!got.some((g) => g[0] === "done"));
  });
}

test("a stream cut before its final event is e2e_truncated", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: events(4), tamper: (c) => c.slice(0, 3) });
  const { got, handlers } = recorder();
  await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_truncated"));
  assert.equal(got.length, 3);
});

test("an event after the final one is e2e_event_invalid", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: [...events(3), { id: "a1:3", event: "token", data: { text: "late" } }], finalAt: 2 });
  const { got, handlers } = recorder();
  await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_event_invalid"));
  assert.ok(!got.some((g) => g[2] && g[2].text === "late"));
});

test("a final chunk that is not done or error, or a done that is not final, is e2e_event_invalid", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: events(3), finalAt: 1 });
  await assert.rejects(client().chat({ message: "x" }, recorder().handlers), isE2E("e2e_event_invalid"));
  routes["POST /api/chat"] = () => ({ events: [events(3)[0], events(3)[2], events(3)[1]] });
  await assert.rejects(client().chat({ message: "x" }, recorder().handlers), isE2E("e2e_event_invalid"));
});

test("a stream without its nonce, or a plain event in a sealed stream, is e2e_unsealed", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: events(3), plain: true });
  await assert.rejects(client().chat({ message: "x" }, recorder().handlers), isE2E("e2e_unsealed"));
  routes["POST /api/chat"] = () => ({ events: events(3), rawStream: 'event: token\ndata: {"text":"injected"}\n\n' });
  const { got, handlers } = recorder();
  await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_unsealed"));
  assert.equal(got.length, 0);
});

// ---------------------------------------------------------------- pairing and pinning

test("registration sends pairing_proof (never the code) sealed to the pinned key and checks key_confirmation", async () => {
  const fake = install();
  const code = "K7Q2-M9X0";
  routes["POST /api/auth/device"] = async (req) => ({
    status: 201,
    json: { id: req.deviceId, name: req.json.name, key_confirmation: await keyConfirmation(code, req.deviceId, req.kid) },
  });
  const record = await client().registerDevice({ pairingCode: code, publicJwk: device.publicJwk, name: "Phone", device });
  assert.equal(record.name, "Phone");
  const sent = fake.seen[0].json;
  assert.equal(sent.pairing_code, undefined);
  assert.equal(sent.pairing_proof, await pairingProof("k7q2m9x0", device.deviceId, server.pin.kid));
  assert.ok(!Buffer.from(fake.seen[0].body).toString("latin1").includes("K7Q2"));
});

test("a registration answer whose key_confirmation does not match (no code, or another kid) is e2e_key_mismatch", async () => {
  install();
  routes["POST /api/auth/device"] = async (req) => ({ status: 201, json: { id: req.deviceId, key_confirmation: await keyConfirmation("WRONG", req.deviceId, req.kid) } });
  await assert.rejects(client().registerDevice({ pairingCode: "K7Q2M9X0", publicJwk: device.publicJwk, name: "P", device }), isE2E("e2e_key_mismatch"));
  routes["POST /api/auth/device"] = async (req) => ({ status: 201, json: { id: req.deviceId, key_confirmation: await keyConfirmation("K7Q2M9X0", req.deviceId, "another-kid") } });
  await assert.rejects(client().registerDevice({ pairingCode: "K7Q2M9X0", publicJwk: device.publicJwk, name: "P", device }), isE2E("e2e_key_mismatch"));
  routes["POST /api/auth/device"] = async (req) => ({ status: 201, json: { id: req.deviceId } });
  await assert.rejects(client().registerDevice({ pairingCode: "K7Q2M9X0", publicJwk: device.publicJwk, name: "P", device }), isE2E("e2e_key_mismatch"));
});

test("the health key is checked against the link's kid before anything is sent", async () => {
  const fake = install();
  const api = client();
  await api.health();
  assert.deepEqual(await api.publishedServerKey(api.lastHealth, server.pin.kid), server.pin);
  const swapped = await makeServerKey();
  health = { ...health, e2e: swapped.pin };
  await api.health();
  await assert.rejects(api.publishedServerKey(api.lastHealth, server.pin.kid), isE2E("e2e_key_mismatch"));
  // A published kid that is not its key's thumbprint is refused too.
  health = { ...health, e2e: { ...swapped.pin, kid: server.pin.kid } };
  await api.health();
  await assert.rejects(api.publishedServerKey(api.lastHealth, server.pin.kid), isE2E("e2e_key_mismatch"));
  assert.equal(fake.seen.length, 0);
});

test("rotation: a new published kid is confirmed by GET /api/e2e/key sealed to the pinned key, then re-pinned", async () => {
  const next = await makeServerKey();
  const fake = install([next, server]); // the old key is within its grace period
  routes["GET /api/e2e/key"] = (req) => {
    assert.equal(req.kid, server.pin.kid); // sealed to the pinned key
    return { json: next.pin };
  };
  const pinned = [];
  const api = new ApiClient(ORIGIN, { getDevice: async () => device, onServerKey: (k) => { pinned.push(k); device = { ...device, serverKey: k }; } });
  health = { ...health, e2e: next.pin };
  await api.health();
  assert.deepEqual(await api.followServerKey(), next.pin);
  assert.deepEqual(pinned, [next.pin]);
  // Later requests are sealed to the new key.
  routes["GET /api/settings"] = (req) => ({ json: { kid: req.kid } });
  assert.deepEqual(await api.getSettings(), { kid: next.pin.kid });
  // Same kid: nothing is asked.
  const before = fake.seen.length;
  assert.deepEqual(await api.followServerKey(), next.pin);
  assert.equal(fake.seen.length, before);
});

test("rotation: an answer naming a key whose thumbprint is not its kid is e2e_key_mismatch, nothing re-pinned", async () => {
  const next = await makeServerKey();
  install([next, server]);
  routes["GET /api/e2e/key"] = () => ({ json: { ...next.pin, kid: server.pin.kid + "x" } });
  const pinned = [];
  const api = new ApiClient(ORIGIN, { getDevice: async () => device, onServerKey: (k) => pinned.push(k) });
  health = { ...health, e2e: next.pin };
  await api.health();
  await assert.rejects(api.followServerKey(), isE2E("e2e_key_mismatch"));
  assert.deepEqual(pinned, []);
});

test("rotation past the grace period: the server says e2e_key_unknown (pair again)", async () => {
  const next = await makeServerKey();
  install([next]);
  const api = new ApiClient(ORIGIN, { getDevice: async () => device, onServerKey: () => assert.fail("nothing to pin") });
  health = { ...health, e2e: next.pin };
  await api.health();
  await assert.rejects(api.followServerKey(), isApi("e2e_key_unknown"));
});

test("the pairing link's fragment carries the server kid: #pair=<code>&api=<origin>&e2e=<kid>", async () => {
  const { takePairingFragment } = await import("../src/lib/config.js");
  const replaced = [];
  const hist = { state: null, replaceState: (s, t, url) => replaced.push(url) };
  const kid = server.pin.kid;
  const loc = { hash: `#pair=ABCD-1234&api=https%3A%2F%2Fapi.example.org&e2e=${kid}`, pathname: "/chat/", search: "" };
  assert.deepEqual(takePairingFragment(loc, hist), { code: "ABCD-1234", api: "https://api.example.org", e2e: kid });
  assert.deepEqual(replaced, ["/chat/"]);
  assert.equal(takePairingFragment({ ...loc, hash: "#pair=X&e2e=not a kid" }, hist).e2e, null);
  assert.deepEqual(takePairingFragment({ ...loc, hash: "" }, hist), { code: null, api: null, e2e: null });
});
