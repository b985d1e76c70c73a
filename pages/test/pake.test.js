// A typed code's pairing (docs/E2E.md, "A typed code: an OPAQUE login"): the MACs of pake.js
// against vectors made here with node:crypto, and ApiClient's whole login against the stand-in
// server (test/e2e-server.js) running the server half of the same OPAQUE library: right code, wrong
// code, a swapped key, the server's refusals, and the link's path, which stays the HMAC proof.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { ApiClient } from "../src/lib/api.js";
import { ApiError, E2EError, PageLoadError } from "../src/lib/errors.js";
import { keyConfirmation, pairingProof } from "../src/lib/e2e.js";
import {
  CONFIRM_LABEL, DEVICE_LABEL, checkLoginConfirmation, deviceProof, loginConfirmation, readPairingStarted, sessionMac,
  startPairingBody, typedRegistrationBody,
} from "../src/lib/pake.js";
import { describe } from "../src/lib/describe.js";
import { KEY_STRETCHING, finishLogin, startLogin } from "../src/lib/opaque.js";
import { fakeServer, makeDevice, makeServerKey, pakeServer } from "./e2e-server.js";

const ORIGIN = "http://127.0.0.1:8765";
const isE2E = (code) => (err) => err instanceof E2EError && err.code === code;
const isApi = (code) => (err) => err instanceof ApiError && err.code === code;

// ---------------------------------------------------------------- the MACs

// 64 bytes 0x00..0x3f: the session key finishLogin gives is 64 bytes, base64url without padding.
const SESSION_BYTES = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
const SESSION_KEY = SESSION_BYTES.toString("base64url");
const DEVICE_ID = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
const KID = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/** The document's formula, by hand: HMAC-SHA256(key = session key bytes, label 0x00 device_id 0x00 kid). */
const hmacVector = (label, key, deviceId, kid) =>
  createHmac("sha256", key).update(Buffer.concat([Buffer.from(label), Buffer.from([0]), Buffer.from(deviceId), Buffer.from([0]), Buffer.from(kid)])).digest("base64url");

test("device_proof and key_confirmation: HMAC-SHA256 keyed by the session key's bytes, labels v2, as node:crypto computes them", async () => {
  assert.equal(DEVICE_LABEL, "privchat pairing device v2");
  assert.equal(CONFIRM_LABEL, "privchat pairing confirm v2");
  const proof = await deviceProof(SESSION_KEY, DEVICE_ID, KID);
  const confirmation = await loginConfirmation(SESSION_KEY, DEVICE_ID, KID);
  assert.equal(proof, hmacVector("privchat pairing device v2", SESSION_BYTES, DEVICE_ID, KID));
  assert.equal(confirmation, hmacVector("privchat pairing confirm v2", SESSION_BYTES, DEVICE_ID, KID));
  assert.match(proof, /^[A-Za-z0-9_-]{43}$/); // the backend's pattern: 32 bytes, base64url, no padding
  assert.notEqual(proof, confirmation);
  // Keyed by the bytes, not the base64url text; bound to the device and to the kid.
  assert.notEqual(proof, hmacVector("privchat pairing device v2", Buffer.from(SESSION_KEY), DEVICE_ID, KID));
  assert.notEqual(proof, await deviceProof(SESSION_KEY, DEVICE_ID, `${KID.slice(0, -1)}Y`));
  assert.notEqual(proof, await deviceProof(SESSION_KEY, `${DEVICE_ID.slice(0, -1)}h`, KID));
  // Not the link's v1 MACs (keyed by the code).
  assert.notEqual(confirmation, await keyConfirmation("ABCD1234", DEVICE_ID, KID));
  assert.equal(await sessionMac("x", SESSION_KEY, "d", "k"), hmacVector("x", SESSION_BYTES, "d", "k"));
  // Fixed vectors, so a change of either side shows (the same with Python's hmac, as the backend's pake.py makes them).
  assert.equal(proof, "Dk9yl4wknkSBOU9yFE9RbaAypo9Tw3ahw3WFPMImcpA");
  assert.equal(confirmation, "0jJtOys3CX1DaxUHGqAwHwPgcq0XfDr4Dm4jppL-8z0");
});

test("checkLoginConfirmation: the right one passes; another key, device, session key or none is e2e_key_mismatch", async () => {
  const good = hmacVector(CONFIRM_LABEL, SESSION_BYTES, DEVICE_ID, KID);
  await checkLoginConfirmation(good, SESSION_KEY, DEVICE_ID, KID);
  await checkLoginConfirmation(`${good}=`, SESSION_KEY, DEVICE_ID, KID); // padding is tolerated
  const other = Buffer.from(SESSION_BYTES).fill(7, 0, 1).toString("base64url");
  for (const wrong of [
    hmacVector(CONFIRM_LABEL, SESSION_BYTES, DEVICE_ID, "another-kid"),
    hmacVector(CONFIRM_LABEL, SESSION_BYTES, "another-device", KID),
    hmacVector(CONFIRM_LABEL, Buffer.from(other, "base64url"), DEVICE_ID, KID),
    hmacVector(DEVICE_LABEL, SESSION_BYTES, DEVICE_ID, KID), // the page's own proof sent back
    good.slice(0, -1), "", undefined, null, 42,
  ]) {
    await assert.rejects(checkLoginConfirmation(wrong, SESSION_KEY, DEVICE_ID, KID), isE2E("e2e_key_mismatch"), String(wrong));
  }
});

test("the request bodies and the first answer as docs/E2E.md names them", () => {
  const jwk = { kty: "EC", crv: "P-256", x: "x", y: "y" };
  assert.deepEqual(startPairingBody({ request: "req", publicJwk: jwk }), { request: "req", public_key: jwk });
  assert.deepEqual(typedRegistrationBody({ pairingId: "p", finalization: "f", deviceProof: "d", publicJwk: jwk, name: "n" }),
    { pairing_id: "p", finalization: "f", device_proof: "d", public_key: jwk, name: "n" });
  assert.deepEqual(readPairingStarted({ pairing_id: "abc_-", response: "resp" }), { pairingId: "abc_-", response: "resp" });
  for (const bad of [null, "x", {}, { pairing_id: "a" }, { pairing_id: "a b", response: "r" }, { pairing_id: "a", response: 3 }]) {
    assert.equal(readPairingStarted(bad), null);
  }
});

test("the OPAQUE client uses the backend's Argon2id parameters; an answer that is not one gives no login", async () => {
  assert.deepEqual(KEY_STRETCHING, { "argon2id-custom": { memory: 19456, iterations: 2, parallelism: 1 } });
  const { state, request } = await startLogin("K7Q2M9X0");
  assert.match(request, /^[A-Za-z0-9_-]+$/);
  assert.match(state, /^[A-Za-z0-9_-]+$/);
  assert.equal(await finishLogin({ state, response: "AAAA", password: "K7Q2M9X0" }), null);
  // Against a record registered with those parameters: the right code logs in, another does not.
  const pake = await pakeServer({ code: "K7Q2-M9X0" });
  const login = async (password) => {
    const started = await startLogin(password);
    const answer = await pake.start({ json: { request: started.request, public_key: device.publicJwk }, deviceId: device.deviceId, kid: "k" });
    return finishLogin({ state: started.state, response: answer.json.response, password });
  };
  const ok = await login("K7Q2M9X0");
  assert.match(ok.finalization, /^[A-Za-z0-9_-]+$/);
  assert.equal(Buffer.from(ok.sessionKey, "base64url").length, 64);
  assert.equal(await login("K7Q2M9X1"), null);
});

// ---------------------------------------------------------------- the whole login, ApiClient against the stand-in

let server;
let device;
let health;
let routes;

function install(keys = [server]) {
  const fake = fakeServer({ keys, devices: new Map([[device.deviceId, device.keyPair.publicKey]]), route: (req) => {
    const r = routes[`${req.method} ${req.target}`];
    return r ? r(req) : { status: 404, json: { error: { code: "not_found", message: "No such thing." } } };
  } });
  globalThis.fetch = async (url, init = {}) => {
    if (new URL(String(url)).pathname === "/api/health") return new Response(JSON.stringify(health), { status: 200, headers: { "Content-Type": "application/json" } });
    return fake.fetch(url, init);
  };
  return fake;
}

function withPake(pake) {
  routes["POST /api/auth/pairing"] = (req) => pake.start(req);
  routes["POST /api/auth/device"] = (req) => pake.finish(req);
}

/** An ApiClient whose loadOpaque is counted. */
function client() {
  const api = new ApiClient(ORIGIN, { getDevice: async () => null });
  api.opaqueLoads = 0;
  const load = api.loadOpaque.bind(api);
  api.loadOpaque = () => {
    api.opaqueLoads += 1;
    return load();
  };
  return api;
}

const typedPairing = (api, code, name = "Phone") =>
  api.registerDevice({ pairingCode: code, publicJwk: device.publicJwk, name, device, typed: true });

beforeEach(async () => {
  server = await makeServerKey();
  device = await makeDevice(server.pin);
  health = { status: "ok", time: Date.now() / 1000, e2e: server.pin };
  routes = {};
});

test("a typed code: OPAQUE start, finish with the code, device_proof bound to the sealed-to kid; key_confirmation checked", async () => {
  const fake = install();
  const pake = await pakeServer({ code: "K7Q2-M9X0" });
  withPake(pake);
  const api = client();
  // Typed as the owner might: lower case, O for 0, a space.
  const record = await typedPairing(api, "k7q2 m9xO", "My phone");
  assert.equal(record.device_id, device.deviceId);
  assert.equal(record.name, "My phone");
  assert.equal(api.opaqueLoads, 1);
  assert.deepEqual(fake.seen.map((r) => `${r.method} ${r.target}`), ["POST /api/auth/pairing", "POST /api/auth/device"]);
  const [start, finish] = fake.seen.map((r) => r.json);
  assert.deepEqual(Object.keys(start).sort(), ["public_key", "request"]);
  assert.deepEqual(start.public_key, device.publicJwk);
  assert.deepEqual(Object.keys(finish).sort(), ["device_proof", "finalization", "name", "pairing_id", "public_key"]);
  assert.equal(finish.pairing_proof, undefined);
  assert.match(finish.device_proof, /^[A-Za-z0-9_-]{43}$/);
  assert.match(finish.pairing_id, /^[A-Za-z0-9_-]{24}$/);
  // Both requests: sealed to the published key, signed by the new device key (fakeServer checked the signature).
  for (const r of fake.seen) {
    assert.match(r.headers["Privchat-E2E"], new RegExp(`kid="${server.pin.kid}"`));
    assert.match(r.headers["Signature-Input"], new RegExp(`keyid="${device.deviceId}"`));
    // The code never travels, in any form the page typed or normalised.
    for (const form of ["K7Q2", "k7q2", "M9X0"]) assert.ok(!JSON.stringify(r.json).includes(form), form);
  }
  assert.deepEqual(pake.state.registered.map((d) => d.deviceId), [device.deviceId]);
  assert.deepEqual(pake.state.refused, []);
});

test("a wrong typed code: finishLogin gives nothing, so nothing is sent after step 1, and it is pairing_invalid", async () => {
  const fake = install();
  const pake = await pakeServer({ code: "K7Q2-M9X0" });
  withPake(pake);
  const err = await typedPairing(client(), "K7Q2-M9X1").catch((e) => e);
  assert.ok(isApi("pairing_invalid")(err), String(err));
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/auth/pairing"]);
  assert.equal(pake.state.tries, 1, "the start counted as a try");
  assert.equal(pake.state.registered.length, 0);
  assert.equal(describe(err, { context: "pairing" }).text, "That pairing code is not valid. Check it for typos, or run `privchat pair` again for a new one.");
  // The same happens when the first answer is not an OPAQUE message at all.
  const other = install();
  routes["POST /api/auth/pairing"] = () => ({ json: { pairing_id: "A".repeat(24), response: "AAAA" } });
  routes["POST /api/auth/device"] = () => assert.fail("nothing may be sent after a login that did not finish");
  await assert.rejects(typedPairing(client(), "K7Q2-M9X0"), isApi("pairing_invalid"));
  assert.equal(other.seen.length, 1);
});

test("a swapped key: a confirmation made with another kid is e2e_key_mismatch, and the record is not returned", async () => {
  install();
  const pake = await pakeServer({ code: "K7Q2-M9X0", confirmKid: "another-servers-kid" });
  withPake(pake);
  const err = await typedPairing(client(), "K7Q2-M9X0").catch((e) => e);
  assert.ok(isE2E("e2e_key_mismatch")(err), String(err));
  // A confirmation that is missing altogether, or the link's v1 one, is no better.
  const honest = await pakeServer({ code: "K7Q2-M9X0" });
  routes["POST /api/auth/pairing"] = (req) => honest.start(req);
  routes["POST /api/auth/device"] = async (req) => {
    const answer = await honest.finish(req);
    return { ...answer, json: { ...answer.json, key_confirmation: await keyConfirmation("K7Q2M9X0", req.deviceId, req.kid) } };
  };
  await assert.rejects(typedPairing(client(), "K7Q2-M9X0"), isE2E("e2e_key_mismatch"));
});

test("a stand-in that runs its own OPAQUE server on a guessed code learns nothing more: the page stops after step 1", async () => {
  // The page seals to the stand-in's key (health lied); the stand-in runs a login for a code it
  // guesses. With the wrong guess the page stops at step 2; no proof exists for the real server.
  const fake = install();
  const standIn = await pakeServer({ code: "GUESS-0000" });
  withPake(standIn);
  await assert.rejects(typedPairing(client(), "K7Q2-M9X0"), isApi("pairing_invalid"));
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/auth/pairing"]);
});

test("the server's sealed refusals are believed and worded: 423 pairing_locked, 403 pairing_used, 403 pairing_expired, 403 pairing_invalid", async () => {
  install();
  const pake = await pakeServer({ code: "K7Q2-M9X0", maxAttempts: 1 });
  withPake(pake);
  await assert.rejects(typedPairing(client(), "K7Q2-M9X1"), isApi("pairing_invalid")); // the one try, wrong
  const locked = await typedPairing(client(), "K7Q2-M9X0").catch((e) => e);
  assert.ok(isApi("pairing_locked")(locked), String(locked));
  assert.equal(locked.status, 423);
  assert.match(describe(locked, { context: "pairing" }).text, /^Too many wrong codes: pairing is locked/);

  const usedServer = install();
  routes["POST /api/auth/pairing"] = () => ({ status: 403, json: { error: { code: "pairing_used", message: "Used." } } });
  const used = await typedPairing(client(), "K7Q2-M9X0").catch((e) => e);
  assert.ok(isApi("pairing_used")(used), String(used));
  assert.equal(usedServer.seen.length, 1);
  assert.match(describe(used, { context: "pairing" }).text, /^That pairing code was already used/);

  const fake = install();
  routes["POST /api/auth/pairing"] = () => ({ status: 403, json: { error: { code: "pairing_expired", message: "No open pairing code." } } });
  const expired = await typedPairing(client(), "K7Q2-M9X0").catch((e) => e);
  assert.ok(isApi("pairing_expired")(expired), String(expired));
  assert.equal(fake.seen.length, 1);
  assert.equal(describe(expired, { context: "pairing" }).text, "That pairing code has expired. Run `privchat pair` on your computer for a new one.");

  // Step 3 refused (the server's login did not finish, or the proof did not check): its pairing_invalid.
  const open = await pakeServer({ code: "K7Q2-M9X0" });
  routes["POST /api/auth/pairing"] = (req) => open.start(req);
  routes["POST /api/auth/device"] = (req) => open.finish({ ...req, kid: "not-the-sealed-kid" });
  await assert.rejects(typedPairing(client(), "K7Q2-M9X0"), isApi("pairing_invalid"));
  assert.deepEqual(open.state.refused, ["device_proof"]);
  assert.equal(open.state.registered.length, 0);
});

test("a refusal of step 1 that comes without the seal is not believed (e2e_unsealed_refusal)", async () => {
  install();
  routes["POST /api/auth/pairing"] = () => ({ status: 423, json: { error: { code: "pairing_locked", message: "x" } }, plain: true });
  const err = await typedPairing(client(), "K7Q2-M9X0").catch((e) => e);
  assert.ok(isE2E("e2e_unsealed_refusal")(err), String(err));
  assert.equal(err.hint, "pairing_locked");
});

test("the link's path is unchanged: pairing_proof and the v1 confirmation, and the OPAQUE client is never loaded", async () => {
  const fake = install();
  routes["POST /api/auth/device"] = async (req) => ({
    status: 201,
    json: { device_id: req.deviceId, name: req.json.name, key_confirmation: await keyConfirmation("K7Q2M9X0", req.deviceId, req.kid) },
  });
  routes["POST /api/auth/pairing"] = () => assert.fail("a link pairs without an OPAQUE login");
  const api = client();
  const record = await api.registerDevice({ pairingCode: "K7Q2-M9X0", publicJwk: device.publicJwk, name: "Phone", device });
  assert.equal(record.name, "Phone");
  assert.equal(api.opaqueLoads, 0);
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/auth/device"]);
  const sent = fake.seen[0].json;
  assert.deepEqual(Object.keys(sent).sort(), ["name", "pairing_proof", "public_key"]);
  assert.equal(sent.pairing_proof, await pairingProof("K7Q2M9X0", device.deviceId, server.pin.kid));
});

test("the OPAQUE client that cannot be loaded: PageLoadError, nothing sent, a sentence that says what to do", async () => {
  const fake = install();
  const api = new ApiClient(ORIGIN, { getDevice: async () => null });
  api.loadOpaque = async () => {
    throw new PageLoadError("opaque", new TypeError("Failed to fetch dynamically imported module"));
  };
  const err = await typedPairing(api, "K7Q2-M9X0").catch((e) => e);
  assert.ok(err instanceof PageLoadError, String(err));
  assert.equal(fake.seen.length, 0);
  assert.match(describe(err, { context: "pairing" }).text, /could not load the part that checks a typed code.*nothing was sent/);
  // The real loader wraps its failures the same way (here: the WebAssembly is fine, so it loads).
  const loaded = await new ApiClient(ORIGIN).loadOpaque();
  assert.equal(typeof loaded.startLogin, "function");
});
