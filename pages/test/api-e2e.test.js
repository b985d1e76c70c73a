// ApiClient speaking docs/E2E.md to a stand-in server (test/e2e-server.js, the page's own e2e.js in
// reverse): sealed requests signed over the sealed bytes and the Privchat-E2E header, opened
// answers and streams of sealed frames, each broken rule's error, pairing proof and key
// confirmation, pinning and rotation.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { ApiClient } from "../src/lib/api.js";
import { ApiError, E2EError, StreamError } from "../src/lib/errors.js";
import { keyConfirmation, metaLine, pairingProof } from "../src/lib/e2e.js";
import { describe } from "../src/lib/describe.js";
import { eventBytes, fakeServer, flipBit, makeDevice, makeServerKey } from "./e2e-server.js";

const ORIGIN = "http://127.0.0.1:8765";
const isE2E = (code) => (err) => err instanceof E2EError && err.code === code;
const isApi = (code) => (err) => err instanceof ApiError && err.code === code;

let server; // {privateKey, pin}
let device;
let routes; // target -> (req) => answer
let health;

function install(keys = [server], retired = []) {
  const fake = fakeServer({ keys, retired, devices: new Map([[device.deviceId, device.keyPair.publicKey]]), route: (req) => {
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
  assert.equal(req.body.length, 1024); // padded to its size class
  assert.match(req.headers["Privchat-E2E"], /^v=2, kid="[^"]+", enc=:[^:]+:$/);
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

test("a sealed error status is an ApiError, believed: its code, its sentence, the sealed Retry-After", async () => {
  install();
  routes["GET /api/devices"] = () => ({ status: 403, json: { error: { code: "device_revoked", message: "Revoked." } } });
  await assert.rejects(client().listDevices(), isApi("device_revoked"));
  // Retry-After: the meta line's is used; the copy outside the seal (here a lie) is never read.
  routes["GET /api/devices"] = () => ({ status: 429, json: { error: { code: "rate_limited", message: "Slow down." } },
    sealedHeaders: { "retry-after": "3" }, headers: { "Retry-After": "3600" } });
  const err = await client().listDevices().catch((e) => e);
  assert.ok(isApi("rate_limited")(err), String(err));
  assert.equal(err.message, "Slow down.");
  assert.equal(err.retryAfter, 3);
  routes["GET /api/devices"] = () => ({ status: 429, json: { error: { code: "rate_limited", message: "Slow down." } }, headers: { "Retry-After": "3600" } });
  assert.equal((await client().listDevices().catch((e) => e)).retryAfter, null, "only outside the seal: not believed");
  await assert.rejects(client().getConversation("nope"), isApi("not_found"));
});

test("an error status without the seal is e2e_unsealed_refusal: its code is only a hint, its words are dropped", async () => {
  install();
  for (const [status, code] of [[401, "device_unknown"], [403, "device_revoked"], [400, "e2e_key_unknown"], [429, "rate_limited"], [502, null]]) {
    routes["GET /api/devices"] = () => ({ status, json: code ? { error: { code, message: "FORGED words" } } : null, plain: true, headers: { "Retry-After": "9" } });
    const err = await client().listDevices().catch((e) => e);
    assert.ok(isE2E("e2e_unsealed_refusal")(err), String(err));
    assert.deepEqual([err.status, err.hint, err.retryAfter], [status, code, undefined]);
    for (const context of ["inline", "send", "status", "pairing", "settings"]) {
      const d = describe(err, { context });
      assert.match(d.text, /did not seal, so it was not believed/);
      assert.ok(!d.text.includes("FORGED"), d.text);
      assert.ok(!d.effect, `${code} in ${context}: no effect`);
      assert.ok(!d.actions.some((a) => a.run === "repair" || a.run === "repair_key"), `${code} in ${context}: no pairing again`);
    }
  }
});

test("a sealed answer whose meta line's status is not the status outside is e2e_status_mismatch", async () => {
  install();
  // A refusal dressed as a success, and a success dressed as a refusal.
  routes["GET /api/devices"] = () => ({ status: 200, json: { devices: [] }, meta: { status: 403, kid: server.pin.kid, headers: {} } });
  await assert.rejects(client().listDevices(), isE2E("e2e_status_mismatch"));
  routes["GET /api/devices"] = () => ({ status: 403, json: { error: { code: "device_revoked", message: "x" } }, meta: { status: 200, kid: server.pin.kid, headers: {} } });
  const err = await client().listDevices().catch((e) => e);
  assert.ok(isE2E("e2e_status_mismatch")(err), String(err));
  assert.equal(describe(err).text, "An answer's status was changed on the way, so it was not believed.");
  assert.equal(describe(err).effect, null);
  // A stream whose meta line says another status than the 200 outside.
  routes["POST /api/chat"] = () => ({ events: events(3), meta: { status: 500, kid: server.pin.kid, headers: {} } });
  const { got, handlers } = recorder();
  await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_status_mismatch"));
  assert.deepEqual(named(got), []);
});

test("a sealed answer without a readable meta line is e2e_response_invalid; a stream's, e2e_event_invalid", async () => {
  install();
  const enc = (t) => new TextEncoder().encode(t);
  for (const metaBytes of [enc(""), enc("{}\n"), enc('{"status":200,"kid":"k"}\n'), enc('{"status":200,"kid":"k","headers":{"x-evil":"1"},"more":1}\n'),
    enc('{"status":"200","kid":"k","headers":{}}\n'), enc('{"status":200,"kid":"k","headers":{"set-cookie":"a"}}\n'), enc('{"status":200,"kid":"k","headers":{}}')]) {
    routes["GET /api/settings"] = () => ({ json: { a: 1 }, metaBytes });
    await assert.rejects(client().getSettings(), isE2E("e2e_response_invalid"), new TextDecoder().decode(metaBytes));
  }
  routes["POST /api/chat"] = () => ({ events: events(3), metaBytes: new Uint8Array(0) });
  await assert.rejects(client().chat({ message: "x" }, recorder().handlers), isE2E("e2e_event_invalid"));
});

test("a sealed answer with a flipped bit is e2e_response_invalid", async () => {
  install();
  routes["GET /api/settings"] = () => ({ json: { a: 1 }, flip: true });
  await assert.rejects(client().getSettings(), isE2E("e2e_response_invalid"));
});

test("the server refuses a request sealed to a key it does not hold: plain e2e_key_unknown, not believed", async () => {
  const other = await makeServerKey();
  install([other]);
  const err = await client().getSettings().catch((e) => e);
  assert.ok(isE2E("e2e_unsealed_refusal")(err), String(err));
  assert.equal(err.hint, "e2e_key_unknown");
  // Said as unproven, with the owner's own way out: nothing is deleted by the page.
  const text = describe(err).text;
  assert.match(text, /not believed/);
  assert.match(text, /--revoke-old/);
  assert.match(text, /Devices/);
  assert.match(text, /Nothing was deleted/);
  assert.deepEqual(describe(err, { context: "status" }).actions.map((a) => a.run), ["retry"]);
});

test("a device without a pinned server key sends nothing: e2e_key_unpinned", async () => {
  const fake = install();
  device = { ...device, serverKey: undefined };
  await assert.rejects(client().getSettings(), isE2E("e2e_key_unpinned"));
  assert.equal(fake.seen.length, 0);
});

test("an export's sealed body is opened into the Blob", async () => {
  install();
  // The file name is the sealed one; the copy outside the seal (here another) is never read.
  routes["GET /api/history/export?format=markdown"] = () => ({ body: new TextEncoder().encode("# MARKER export"),
    sealedHeaders: { "content-disposition": 'attachment; filename="x.md"' }, headers: { "Content-Disposition": 'attachment; filename="evil.html"' } });
  const { blob, filename } = await client().exportHistory("markdown");
  assert.equal(await blob.text(), "# MARKER export");
  assert.equal(filename, "x.md");
  routes["GET /api/history/export?format=markdown"] = () => ({ body: new TextEncoder().encode("#"), headers: { "Content-Disposition": 'attachment; filename="evil.html"' } });
  assert.match((await client().exportHistory("markdown")).filename, /^privchat-export-\d{4}-\d\d-\d\d\.md$/);
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

const named = (got) => got.filter((g) => g[0] !== "ping").map((g) => g.slice(0, 2));

test("a sealed stream: its frames are opened and each event dispatched with the id from inside the seal", async () => {
  const fake = install();
  // Two empty frames first (queued), then 30 bytes a tick: events cut across frames; a comment is ignored.
  routes["POST /api/chat"] = () => ({ events: events(4), pack: { perTick: 30, emptyFirst: 2 }, comment: true });
  const { got, handlers } = recorder();
  await client().chat({ message: "hello MARKER" }, handlers);
  assert.deepEqual(named(got), [["start", "a1:0"], ["token", "a1:1"], ["token", "a1:2"], ["done", "a1:3"]]);
  assert.equal(got.find((g) => g[0] === "token")[2].text, "MARK0");
  // Every frame that opened said the stream is alive, the empty ones first.
  const frames = Math.ceil(eventBytes(events(4), { status: 200, kid: server.pin.kid, headers: {} }).length / 30) + 2;
  assert.equal(got.filter((g) => g[0] === "ping").length, frames);
  assert.deepEqual(got.slice(0, 2), [["ping"], ["ping"]]);
  assert.equal(fake.seen[0].json.message, "hello MARKER");
});

test("a token whose multibyte characters are split between frames arrives whole", async () => {
  install();
  const text = "héllo 😀 ✓ 日本";
  routes["POST /api/chat"] = () => ({ events: [events(3)[0], { id: "a1:1", event: "token", data: { text } }, { ...events(3)[2], id: "a1:2" }], pack: { perTick: 5 } });
  const { got, handlers } = recorder();
  await client().chat({ message: "x" }, handlers);
  assert.deepEqual(got.filter((g) => g[0] === "token").map((g) => g[2].text), [text]);
});

test("the stream's error event is the final one and comes as a StreamError", async () => {
  install();
  routes["GET /api/chat/a1/stream?last_event_id=a1%3A0"] = () => ({ events: [{ id: "a1:1", event: "error", data: { code: "model_failed", message: "boom" } }] });
  const { got, handlers } = recorder();
  await client().attach({ assistantId: "a1", lastEventId: "a1:0" }, handlers);
  const err = got.find((g) => g[0] === "error");
  assert.ok(err[2] instanceof StreamError);
  assert.equal(err[2].code, "model_failed");
});

test("the transport hands on every opened event as {event, id, data}, in order, names it does not know included", async () => {
  install();
  const evs = [events(3)[0], { id: "a1:1", event: "tool_call", data: { name: "MARK" } }, { id: "a1:2", event: "token", data: { text: "T" } }, { id: "a1:3", event: "done", data: {} }];
  routes["POST /api/chat"] = () => ({ events: evs, pack: { perTick: 40 } });
  const transport = client().transport;
  const res = await transport.send("POST", "/api/chat", { json: { message: "x" }, headers: { Accept: "text/event-stream" } });
  const got = [];
  await transport.readEvents(res, { onFrame: () => got.push("frame"), onEvent: (ev) => got.push(ev) });
  assert.deepEqual(got.filter((g) => g !== "frame"), evs.map(({ id, event, data }) => ({ event, id, data })));
  assert.ok(got.filter((g) => g === "frame").length > 1, "a frame each tick");
  // The numbering is still checked, whatever the names: a skipped number is refused.
  routes["POST /api/chat"] = () => ({ events: [evs[0], { ...evs[1], id: "a1:2" }, { ...evs[3], id: "a1:3" }] });
  const skipped = await transport.send("POST", "/api/chat", { json: { message: "x" }, headers: { Accept: "text/event-stream" } });
  await assert.rejects(transport.readEvents(skipped, {}), isE2E("e2e_event_invalid"));
});

test("a reply with an event the page does not know: the chat passes over it and the reply finishes", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: [events(3)[0], { id: "a1:1", event: "tool_call", data: { name: "x" } }, { id: "a1:2", event: "token", data: { text: "T" } }, { id: "a1:3", event: "done", data: {} }] });
  const { got, handlers } = recorder();
  await client().chat({ message: "x" }, handlers);
  assert.deepEqual(named(got), [["start", "a1:0"], ["token", "a1:2"], ["done", "a1:3"]]);
});

// events(4) at 40 bytes a tick: about seven frames, the last one final.
const cut = { perTick: 40 };
for (const [name, tamper] of [
  ["dropped", (c) => [c[0], ...c.slice(2)]],
  ["reordered", (c) => [c[0], c[2], c[1], ...c.slice(3)]],
  ["replayed", (c) => [c[0], c[1], c[1], ...c.slice(2)]],
  ["flipped", (c) => [c[0], Buffer.from(flipBit(Buffer.from(c[1], "base64url"), 3)).toString("base64url"), ...c.slice(2)]],
  ["resized", (c) => [c[0], Buffer.from(Buffer.from(c[1], "base64url").subarray(0, 1000)).toString("base64url"), ...c.slice(2)]],
]) {
  test(`a ${name} frame is e2e_event_invalid and nothing after it is shown`, async () => {
    install();
    routes["POST /api/chat"] = () => ({ events: events(4), pack: cut, tamper });
    const { got, handlers } = recorder();
    await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_event_invalid"));
    assert.ok(!got.some((g) => g[0] === "done"));
  });
}

test("a stream cut before its final frame is e2e_truncated", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: events(4), pack: cut, tamper: (c) => c.slice(0, -1) });
  const { got, handlers } = recorder();
  await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_truncated"));
  assert.deepEqual(named(got).map((g) => g[0]), ["start", "token", "token"]);
});

test("a frame after the final one is e2e_event_invalid", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: events(3), tamper: (c) => [...c, c[c.length - 1]] });
  await assert.rejects(client().chat({ message: "x" }, recorder().handlers), isE2E("e2e_event_invalid"));
});

test("a done in a frame not sealed final, bytes after it, or a final frame without it is e2e_event_invalid", async () => {
  install();
  const [start, token, done] = events(3);
  const frame = (evs, tail = "") => ({ payload: new Uint8Array([...eventBytes(evs), ...new TextEncoder().encode(tail)]), size: 1024 });
  for (const frames of [
    [frame([start, done]), frame([])], // done, then an empty final frame
    [frame([start, done], '{"id":"a1:9"')], // bytes after done in the final frame
    [frame([start]), frame([token])], // the final frame ends with a token
    [frame([start]), frame([token], JSON.stringify(done))], // done without its line feed
  ]) {
    routes["POST /api/chat"] = () => ({ frames });
    const { got, handlers } = recorder();
    await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_event_invalid"));
    assert.ok(!got.some((g) => g[0] === "done"));
  }
});

test("a server that speaks a newer version refuses this page: e2e_version_old, worded as reload the page", async () => {
  install();
  routes["GET /api/settings"] = () => ({ status: 400, json: { error: { code: "e2e_version_old", message: "Reload." } }, plain: true });
  const err = await client().getSettings().catch((e) => e);
  assert.ok(isApi("e2e_version_old")(err), String(err));
  assert.match(describe(err).text, /[Rr]eload the page/);
  assert.deepEqual(describe(err, { context: "status" }).actions.map((a) => a.run), ["reload"]);
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

/** A client whose onServerKey pins the key with the device, as the page does; `pinned` lists them. */
function rotatingClient(pinned = []) {
  return new ApiClient(ORIGIN, { getDevice: async () => device, onServerKey: (k) => { pinned.push(k); device = { ...device, serverKey: k }; } });
}

test("rotation: a sealed answer naming another kid is followed (GET /api/e2e/key sealed to the pinned key), health unchanged", async () => {
  const next = await makeServerKey();
  const fake = install([next, server]); // the old key is within its grace period
  routes["GET /api/e2e/key"] = (req) => {
    assert.equal(req.kid, server.pin.kid); // sealed to the pinned key
    return { json: next.pin };
  };
  routes["GET /api/settings"] = (req) => ({ json: { kid: req.kid } });
  const pinned = [];
  const api = rotatingClient(pinned);
  // Health still shows the old key (it may lie, or be stale): it is not what moves the pin.
  await api.health();
  assert.equal(api.lastHealth.e2e.kid, server.pin.kid);
  assert.deepEqual(await api.getSettings(), { kid: server.pin.kid }); // answered, its meta line names `next`
  assert.deepEqual(pinned, [next.pin]);
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/settings", "/api/e2e/key"]);
  // Later requests are sealed to the new key; its answers name it: nothing more is asked.
  assert.deepEqual(await api.getSettings(), { kid: next.pin.kid });
  assert.equal(fake.seen.length, 3);
});

test("rotation: a reply stream whose meta line names another kid is followed too", async () => {
  const next = await makeServerKey();
  const fake = install([next, server]);
  routes["GET /api/e2e/key"] = () => ({ json: next.pin });
  routes["POST /api/chat"] = () => ({ events: events(3) });
  const pinned = [];
  const { got, handlers } = recorder();
  await rotatingClient(pinned).chat({ message: "x" }, handlers);
  assert.deepEqual(named(got).map((g) => g[0]), ["start", "token", "done"]);
  assert.deepEqual(pinned, [next.pin]);
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/chat", "/api/e2e/key"]);
});

test("rotation: health publishing a new key moves nothing; only sealed answers do", async () => {
  const swapped = await makeServerKey();
  const fake = install();
  routes["GET /api/settings"] = () => ({ json: {} });
  const pinned = [];
  const api = rotatingClient(pinned);
  health = { ...health, e2e: swapped.pin }; // a plain answer claiming a rotation
  await api.health();
  await api.getSettings();
  assert.deepEqual(pinned, []);
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/settings"]);
  assert.equal(device.serverKey.kid, server.pin.kid);
});

test("rotation: a request sealed to a retired key gets a sealed 409 e2e_key_retired; the page follows and sends it once more", async () => {
  const next = await makeServerKey();
  const fake = install([next, server], [server.pin.kid]);
  routes["GET /api/e2e/key"] = () => ({ json: next.pin });
  routes["PUT /api/settings"] = (req) => ({ json: { kid: req.kid, saved: req.json } });
  const pinned = [];
  const out = await rotatingClient(pinned).putSettings({ temperature: 0.5 });
  assert.deepEqual(out, { kid: next.pin.kid, saved: { temperature: 0.5 } });
  assert.deepEqual(pinned, [next.pin]);
  assert.deepEqual(fake.seen.map((r) => `${r.method} ${r.target}`), ["PUT /api/settings", "GET /api/e2e/key", "PUT /api/settings"]);
  assert.match(fake.seen[2].headers["Privchat-E2E"], new RegExp(`kid="${next.pin.kid}"`));
});

test("rotation: e2e_key_retired is followed once only; a second one is the error", async () => {
  const next = await makeServerKey();
  const fake = install([next, server], [server.pin.kid, next.pin.kid]); // a server that refuses both
  routes["GET /api/e2e/key"] = () => ({ json: next.pin });
  const err = await rotatingClient().getSettings().catch((e) => e);
  assert.ok(isApi("e2e_key_retired")(err), String(err));
  assert.equal(fake.seen.length, 3);
});

test("rotation: a plain e2e_key_retired is not believed and moves nothing", async () => {
  install();
  routes["GET /api/settings"] = () => ({ status: 409, json: { error: { code: "e2e_key_retired", message: "x" } }, plain: true });
  const pinned = [];
  await assert.rejects(rotatingClient(pinned).getSettings(), isE2E("e2e_unsealed_refusal"));
  assert.deepEqual(pinned, []);
});

test("rotation: a key answer naming a key whose thumbprint is not its kid, or not its meta line's, re-pins nothing", async () => {
  const next = await makeServerKey();
  install([next, server], [server.pin.kid]);
  const pinned = [];
  routes["GET /api/e2e/key"] = () => ({ json: { ...next.pin, kid: server.pin.kid + "x" } });
  await assert.rejects(rotatingClient(pinned).getSettings(), isE2E("e2e_key_mismatch"));
  const third = await makeServerKey();
  routes["GET /api/e2e/key"] = () => ({ json: third.pin }); // a valid key, but not the one the meta line names
  await assert.rejects(rotatingClient(pinned).getSettings(), isE2E("e2e_key_mismatch"));
  assert.deepEqual(pinned, []);
});

test("rotation past the grace period: the key route's plain e2e_key_unknown is not believed; nothing is re-pinned", async () => {
  const next = await makeServerKey();
  install([next]);
  const api = new ApiClient(ORIGIN, { getDevice: async () => device, onServerKey: () => assert.fail("nothing to pin") });
  const err = await api.transport.followServerKey().catch((e) => e);
  assert.ok(isE2E("e2e_unsealed_refusal")(err), String(err));
  assert.equal(err.hint, "e2e_key_unknown");
});

// ---------------------------------------------------------------- reattach: the cursor

test("reattach always carries its cursor in the signed query, 'from the start' too", async () => {
  const fake = install();
  routes["GET /api/chat/a1/stream?last_event_id="] = () => ({ events: events(3) });
  routes["GET /api/chat/a1/stream?last_event_id=a1%3A1"] = () => ({ events: [{ id: "a1:2", event: "done", data: {} }] });
  await client().attach({ assistantId: "a1", lastEventId: null }, recorder().handlers);
  await client().attach({ assistantId: "a1", lastEventId: "a1:1" }, recorder().handlers);
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/chat/a1/stream?last_event_id=", "/api/chat/a1/stream?last_event_id=a1%3A1"]);
  // The signature covers the query.
  assert.match(fake.seen[0].headers["Signature-Input"], /"@query"/);
});

test("a reattach whose first event does not follow on from the cursor is e2e_event_invalid, nothing of it shown", async () => {
  install();
  const tail = (from) => [...Array.from({ length: 3 - from }, (_, i) => ({ id: `a1:${from + i}`, event: "token", data: { text: `T${from + i}` } })),
    { id: "a1:3", event: "done", data: {} }];
  for (const [cursor, evs] of [
    ["a1:0", tail(2)], // a gap: 1 is missing
    ["a1:1", tail(1)], // shifted back: 1 again
    [null, tail(1)], // from the start, but 0 is missing
    ["a1:1", [{ id: "a9:2", event: "token", data: { text: "other" } }, { id: "a9:3", event: "done", data: {} }]], // another reply's
    ["a1:1", [{ id: null, event: "token", data: { text: "unnumbered" } }, { id: "a1:2", event: "done", data: {} }]],
  ]) {
    routes[`GET /api/chat/a1/stream?last_event_id=${cursor ? encodeURIComponent(cursor) : ""}`] = () => ({ events: evs });
    const { got, handlers } = recorder();
    const err = await client().attach({ assistantId: "a1", lastEventId: cursor }, handlers).catch((e) => e);
    assert.ok(isE2E("e2e_event_invalid")(err), `${cursor}: ${err}`);
    assert.equal(err.sequence, true);
    assert.deepEqual(named(got), [], `${cursor}: nothing shown`);
    assert.match(describe(err).text, /^Part of the reply/);
  }
});

test("within one stream, a token whose number is not the previous + 1 is e2e_event_invalid", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: [events(3)[0], { id: "a1:2", event: "token", data: { text: "skipped one" } }, { id: "a1:3", event: "done", data: {} }], pack: { perTick: 60 } });
  const { got, handlers } = recorder();
  await assert.rejects(client().chat({ message: "x" }, handlers), isE2E("e2e_event_invalid"));
  assert.deepEqual(named(got), [["start", "a1:0"]]);
});

test("a snapshot (a finished reply's whole text, unnumbered) is taken as the first event, then its done", async () => {
  install();
  routes["GET /api/chat/a1/stream?last_event_id=a1%3A4"] = () => ({ events: [{ id: null, event: "snapshot", data: { text: "All of it." } }, { id: null, event: "done", data: { finish_reason: "stop" } }] });
  const got = [];
  await client().attach({ assistantId: "a1", lastEventId: "a1:4" }, { onSnapshot: (d) => got.push(["snapshot", d.text]), onDone: () => got.push(["done"]) });
  assert.deepEqual(got, [["snapshot", "All of it."], ["done"]]);
  // Not after other events, and nothing numbered after it.
  routes["GET /api/chat/a1/stream?last_event_id=a1%3A4"] = () => ({ events: [{ id: "a1:5", event: "token", data: { text: "x" } }, { id: null, event: "snapshot", data: { text: "y" } }, { id: null, event: "done", data: {} }] });
  await assert.rejects(client().attach({ assistantId: "a1", lastEventId: "a1:4" }, {}), isE2E("e2e_event_invalid"));
  routes["GET /api/chat/a1/stream?last_event_id=a1%3A4"] = () => ({ events: [{ id: null, event: "snapshot", data: { text: "y" } }, { id: "a1:5", event: "done", data: {} }] });
  await assert.rejects(client().attach({ assistantId: "a1", lastEventId: "a1:4" }, {}), isE2E("e2e_event_invalid"));
});

test("a sealed final error without a number (a revoked device's stream) ends the stream as the server's word", async () => {
  install();
  routes["POST /api/chat"] = () => ({ events: [events(3)[0], { id: null, event: "error", data: { code: "device_revoked", message: "Revoked." } }] });
  const { got, handlers } = recorder();
  await client().chat({ message: "x" }, handlers);
  const err = got.find((g) => g[0] === "error");
  assert.equal(err[2].code, "device_revoked");
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
