// A stand-in for the backend's end-to-end layer (docs/E2E.md), for the node tests: a mock fetch
// that checks the request signature (over the sealed bytes and the Privchat-E2E header), opens the
// request with the server's private key, hands the JSON to a route, and seals the answer: one
// padded chunk, or a stream of sealed frames cut the way the server's clock cuts them. It uses the
// page's own e2e.js "in reverse"; the Python backend is checked against the same code by
// test/e2e-interop.mjs.

import { FRAME_SIZES, cipherSuite, importServerKey, metaLine, openRequest, pinnable } from "../src/lib/e2e.js";
import { base64ToBytes, contentDigest, jwkThumbprint, signatureBase, verifyBase } from "../src/lib/signing.js";
import { publishedServerKey } from "../src/lib/transport.js";

/** The meta line of the tests' streams when none is named: a 200 from the key "test-kid". */
export const TEST_META = Object.freeze({ status: 200, kid: "test-kid", headers: {} });

/**
 * The byte string a stream carries: its meta line (`meta`; null for none), then each event's JSON
 * and a line feed.
 */
export function eventBytes(events, meta = TEST_META) {
  const head = meta === null ? "" : new TextDecoder().decode(metaLine(meta));
  return new TextEncoder().encode(head + events.map((e) => (typeof e === "string" ? e : JSON.stringify(e)) + "\n").join(""));
}

/**
 * Cuts a stream's bytes into frames [{payload, size}] as the server's clock does (docs/E2E.md): at
 * each tick, with B bytes waiting, the smallest frame size with F - 18 >= B (16384 when none is),
 * carrying min(B, F - 18) bytes. `perTick` bytes arrive each tick (all at once by default);
 * `emptyFirst` empty frames go first (a reply queued or loading its model).
 */
export function packFrames(bytes, { perTick = Infinity, emptyFirst = 0 } = {}) {
  const frames = Array.from({ length: emptyFirst }, () => ({ payload: new Uint8Array(0), size: FRAME_SIZES[0] }));
  let arrived = 0;
  let sent = 0;
  while (sent < bytes.length) {
    arrived = Math.min(bytes.length, arrived + perTick);
    const waiting = arrived - sent;
    const size = FRAME_SIZES.find((f) => f - 18 >= waiting) || FRAME_SIZES[FRAME_SIZES.length - 1];
    const n = Math.min(waiting, size - 18);
    frames.push({ payload: bytes.slice(sent, sent + n), size });
    sent += n;
  }
  return frames;
}

/** A server key pair: {privateKey, pin: {kid, jwk, fingerprint}}. */
export async function makeServerKey() {
  const kp = await cipherSuite().kem.generateKeyPair();
  const jwk = await globalThis.crypto.subtle.exportKey("jwk", kp.publicKey);
  const key = await importServerKey(jwk);
  return { privateKey: kp.privateKey, pin: pinnable(key) };
}

const plainError = (status, code, message = code) =>
  new Response(JSON.stringify({ error: { code, message } }), { status, headers: { "Content-Type": "application/json" } });

function headerOf(headers, name) {
  for (const [k, v] of Object.entries(headers || {})) if (k.toLowerCase() === name.toLowerCase()) return v;
  return null;
}

/**
 * @param {{keys: {privateKey, pin}[], retired?: string[], devices?: Map<string, CryptoKey>, route: (req) => object}} opts
 *   keys     the server keys that open requests (the first is the current one, named in every meta line)
 *   retired  kids of `keys` that are retired: they open GET /api/e2e/key and nothing else (a sealed
 *            409 e2e_key_retired elsewhere)
 *   devices  deviceId -> public key, to verify signatures (absent: not checked); a refusal of the
 *            signature is sealed, as the server's is once the header names a key it holds
 *   route    ({method, target, json, deviceId, kid}) -> {status?, json?, headers? (outside the seal),
 *            sealedHeaders? (the meta line's), meta? (the whole meta line, to lie with), metaBytes?
 *            (raw bytes in its place), body?: Uint8Array,
 *            events?: [{id, event, data}] (a stream, cut by packFrames(…, pack)), pack?: {perTick, emptyFirst},
 *            frames?: [{payload, size}] (a stream cut by hand, its meta line included), tamper?: (chunks) => chunks,
 *            comment?: true (an SSE comment first), rawStream?: string, plain?: true (answer unsealed)}
 * Returns {fetch, seen: [{method, target, headers, body, json}]}.
 */
export function fakeServer({ keys, retired = [], devices = null, route }) {
  const seen = [];
  const fetch = async (url, init = {}) => {
    const u = new URL(String(url));
    const target = u.pathname + u.search;
    const method = init.method || "GET";
    const headers = init.headers || {};
    const body = init.body === undefined || init.body === null ? null : new Uint8Array(init.body);
    const record = { method, target, headers, body, json: undefined };
    seen.push(record);
    const e2e = headerOf(headers, "Privchat-E2E");
    if (!e2e) return plainError(400, "e2e_required");
    const sigInput = headerOf(headers, "Signature-Input") || "";
    const m = /^sig1=(\(.*\);created=\d+;nonce="[^"]+";keyid="([^"]+)";.*)$/.exec(sigInput);
    if (!m) return plainError(401, "signature_missing");
    const deviceId = m[2];
    const kid = /kid="([^"]+)"/.exec(e2e);
    const key = kid && keys.find((k) => k.pin.kid === kid[1]);
    if (!key) return plainError(400, "e2e_key_unknown");
    let opened;
    try {
      opened = await openRequest({ privateKey: key.privateKey, header: e2e, method, target, deviceId, body });
    } catch {
      return plainError(400, "e2e_open_failed");
    }
    // From here on the context exists: every answer is sealed, with its meta line.
    const sealedAnswer = async (answer) => {
      const status = answer.status || 200;
      const meta = answer.meta || { status, kid: keys[0].pin.kid, headers: answer.sealedHeaders || {} };
      const head = answer.metaBytes !== undefined ? answer.metaBytes : metaLine(meta);
      const extra = answer.headers || {};
      if (answer.events || answer.frames) {
        const frames = answer.frames || packFrames(new Uint8Array([...head, ...eventBytes(answer.events, null)]), answer.pack);
        const { nonce, chunks: sealed } = await opened.responder.sealFrames(frames);
        const chunks = answer.tamper ? answer.tamper(sealed) : sealed;
        const text = (answer.comment ? ": a comment\n\n" : "") + chunks.map((c) => `event: sealed\ndata: ${c}\n\n`).join("");
        const h = { "Content-Type": "text/event-stream", ...extra };
        if (!answer.plain) h["Privchat-E2E-Nonce"] = nonce;
        return new Response(answer.rawStream !== undefined ? answer.rawStream : text, { status, headers: h });
      }
      const payload = answer.body !== undefined ? answer.body : new TextEncoder().encode(JSON.stringify(answer.json === undefined ? null : answer.json));
      if (answer.plain) return new Response(payload, { status, headers: { "Content-Type": "application/json", ...extra } });
      const sealed = await opened.responder.seal(new Uint8Array([...head, ...payload]));
      const out = answer.flip ? flipBit(sealed.body) : sealed.body;
      return new Response(out, { status, headers: { "Content-Type": "application/privchat-e2e", "Privchat-E2E-Nonce": sealed.nonce, ...extra } });
    };
    const refuse = (status, code) => sealedAnswer({ status, json: { error: { code, message: code } } });
    if (headerOf(headers, "Content-Digest") !== (await contentDigest(body || new Uint8Array(0)))) return refuse(401, "digest_mismatch");
    if (devices && devices.has(deviceId)) {
      const base = signatureBase({ method, path: u.pathname, query: u.search || "?", contentDigest: headerOf(headers, "Content-Digest"), e2e, params: m[1] });
      const sig = base64ToBytes(/^sig1=:(.*):$/.exec(headerOf(headers, "Signature"))[1]);
      if (!(await verifyBase(devices.get(deviceId), base, sig))) return refuse(401, "signature_invalid");
    }
    if (retired.includes(key.pin.kid) && !(method === "GET" && u.pathname === "/api/e2e/key")) return refuse(409, "e2e_key_retired");
    if (opened.plaintext) record.json = JSON.parse(new TextDecoder().decode(opened.plaintext));
    return sealedAnswer((await route({ method, target, json: record.json, deviceId, kid: key.pin.kid, headers })) || {});
  };
  return { fetch, seen };
}

export function flipBit(bytes, at = 0) {
  const out = new Uint8Array(bytes);
  out[at] ^= 1;
  return out;
}

/** A paired device for the tests: {keyPair, deviceId, serverKey}. */
export async function makeDevice(serverPin) {
  const keyPair = await globalThis.crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const jwk = await globalThis.crypto.subtle.exportKey("jwk", keyPair.publicKey);
  const deviceId = await jwkThumbprint(jwk);
  return { keyPair, deviceId, serverKey: serverPin, publicJwk: { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y } };
}

// ---------------------------------------------------------------- a typed code's OPAQUE login

/**
 * The backend's typed-code pairing (backend/privchat/auth/pake.py, docs/E2E.md "A typed code: an
 * OPAQUE login") for the node tests, with the server half of @serenity-kit/opaque (the same
 * opaque-ke the backend's opaquepy wraps). The code is registered with itself under user id
 * "privchat-pairing" with the backend's Argon2id parameters; the MACs are node:crypto's, written
 * from the document, not the page's pake.js. Routes for fakeServer:
 *   start(req)   POST /api/auth/pairing: 423 pairing_locked once `maxAttempts` starts were counted,
 *                403 pairing_expired when no code is open, else {pairing_id, response} (a counted try)
 *   finish(req)  POST /api/auth/device: 403 pairing_invalid unless the login finishes and
 *                device_proof checks with the kid that opened the request; then 201 with the record
 *                and key_confirmation (made with `confirmKid` when set: a server with another key)
 * @param {{code: string, maxAttempts?: number, confirmKid?: string|null}} opts
 * Returns {start, finish, state: {tries, open, logins, registered: [{deviceId, name, json}], refused: [why]}}.
 */
export async function pakeServer({ code, maxAttempts = 5, confirmKid = null }) {
  const opaque = await import("@serenity-kit/opaque");
  const { createHmac, randomBytes } = await import("node:crypto");
  await opaque.ready;
  const ksf = { "argon2id-custom": { memory: 19456, iterations: 2, parallelism: 1 } };
  const userIdentifier = "privchat-pairing";
  const password = String(code).toUpperCase().replace(/[-\s]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
  const serverSetup = opaque.server.createSetup();
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const { registrationResponse } = opaque.server.createRegistrationResponse({ serverSetup, userIdentifier, registrationRequest });
  const { registrationRecord } = opaque.client.finishRegistration({ clientRegistrationState, registrationResponse, password, keyStretching: ksf });
  const mac = (label, sessionKey, deviceId, kid) =>
    createHmac("sha256", Buffer.from(sessionKey, "base64url")).update(Buffer.from(`${label}\0${deviceId}\0${kid}`, "utf8")).digest("base64url");
  const state = { tries: 0, open: true, locked: false, logins: new Map(), registered: [], refused: [] };
  const refuse = (status, code, why) => {
    state.refused.push(why || code);
    return { status, json: { error: { code, message: why || code } } };
  };
  return {
    state,
    registrationRecord,
    async start(req) {
      const body = req.json || {};
      if (!body.public_key || (await jwkThumbprint(body.public_key)) !== req.deviceId) return refuse(401, "signature_invalid", "not signed by the key it names");
      if (state.locked) return refuse(423, "pairing_locked");
      if (!state.open) return refuse(403, "pairing_expired");
      state.tries += 1;
      if (state.tries > maxAttempts) {
        state.locked = true;
        state.open = false;
        return refuse(423, "pairing_locked");
      }
      const { serverLoginState, loginResponse } = opaque.server.startLogin({ serverSetup, registrationRecord, startLoginRequest: body.request, userIdentifier });
      const pairingId = randomBytes(18).toString("base64url");
      state.logins.set(pairingId, { serverLoginState, kid: req.kid });
      return { json: { pairing_id: pairingId, response: loginResponse } };
    },
    async finish(req) {
      const body = req.json || {};
      if (body.pairing_proof !== undefined) return refuse(400, "invalid_request", "a typed login with a pairing_proof");
      if (!body.public_key || (await jwkThumbprint(body.public_key)) !== req.deviceId) return refuse(401, "signature_invalid", "not signed by the key it names");
      const login = state.logins.get(body.pairing_id);
      state.logins.delete(body.pairing_id);
      if (!login) return refuse(403, "pairing_invalid", "no such login");
      let sessionKey;
      try {
        ({ sessionKey } = opaque.server.finishLogin({ serverLoginState: login.serverLoginState, finishLoginRequest: body.finalization }));
      } catch {
        return refuse(403, "pairing_invalid", "the login did not finish");
      }
      if (body.device_proof !== mac("privchat pairing device v2", sessionKey, req.deviceId, req.kid)) return refuse(403, "pairing_invalid", "device_proof");
      state.open = false;
      state.tries = 0;
      state.registered.push({ deviceId: req.deviceId, name: body.name, json: body });
      return {
        status: 201,
        json: {
          device_id: req.deviceId, name: body.name, fingerprint: "0000 0000 0000 0000", created_at: 1, status: "active",
          key_confirmation: mac("privchat pairing confirm v2", sessionKey, req.deviceId, confirmKid || req.kid),
        },
      };
    },
  };
}

/**
 * The API as the pairing form uses it: health publishing `published()` (the server key's pin, read
 * at each call so a test can rotate it), and a registration that records each request and fails
 * with `registerError` when one is set (`healthError` likewise for health).
 */
export function fakePairingApi({ origin = "https://chat-api.example.org", published }) {
  return {
    origin,
    registered: [],
    registerError: null,
    healthError: null,
    lastHealth: null,
    async health() {
      if (this.healthError) throw this.healthError;
      this.lastHealth = { status: "ok", e2e: published() };
      return this.lastHealth;
    },
    publishedServerKey: (health, kid) => publishedServerKey(health, kid),
    async registerDevice(req) {
      this.registered.push(req);
      if (this.registerError) throw this.registerError;
      return { device_id: req.device.deviceId, name: `${req.name} (server)` };
    },
  };
}
