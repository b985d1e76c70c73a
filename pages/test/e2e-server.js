// A stand-in for the backend's end-to-end layer (docs/E2E.md), for the node tests: a mock fetch
// that checks the request signature (over the sealed bytes and the Privchat-E2E header), opens the
// request with the server's private key, hands the JSON to a route, and seals the answer, one
// chunk or one chunk per stream event. It uses the page's own e2e.js "in reverse"; the Python
// backend is checked against the same code by test/e2e-interop.mjs.

import { cipherSuite, importServerKey, openRequest, pinnable, sealChunk } from "../src/lib/e2e.js";
import { base64ToBytes, contentDigest, jwkThumbprint, signatureBase, verifyBase } from "../src/lib/signing.js";

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
 * @param {{keys: {privateKey, pin}[], devices?: Map<string, CryptoKey>, route: (req) => object}} opts
 *   keys     the server keys that open requests (the first is the current one)
 *   devices  deviceId -> public key, to verify signatures (absent: not checked)
 *   route    ({method, target, json, deviceId, kid}) -> {status?, json?, headers?, events?: [{id, event, data}],
 *            plain?: true (answer unsealed), tamper?: (chunks) => chunks, body?: Uint8Array}
 * Returns {fetch, seen: [{method, target, headers, body, json}]}.
 */
export function fakeServer({ keys, devices = null, route }) {
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
    if (!m) return plainError(401, "signature_invalid");
    const deviceId = m[2];
    if (headerOf(headers, "Content-Digest") !== (await contentDigest(body || new Uint8Array(0)))) return plainError(401, "digest_mismatch");
    if (devices && devices.has(deviceId)) {
      const base = signatureBase({ method, path: u.pathname, query: u.search || "?", contentDigest: headerOf(headers, "Content-Digest"), e2e, params: m[1] });
      const sig = base64ToBytes(/^sig1=:(.*):$/.exec(headerOf(headers, "Signature"))[1]);
      if (!(await verifyBase(devices.get(deviceId), base, sig))) return plainError(401, "signature_invalid");
    }
    const kid = /kid="([^"]+)"/.exec(e2e);
    const key = kid && keys.find((k) => k.pin.kid === kid[1]);
    if (!key) return plainError(400, "e2e_key_unknown");
    let opened;
    try {
      opened = await openRequest({ privateKey: key.privateKey, header: e2e, method, target, deviceId, body });
    } catch {
      return plainError(400, "e2e_open_failed");
    }
    if (opened.plaintext) record.json = JSON.parse(new TextDecoder().decode(opened.plaintext));
    const answer = (await route({ method, target, json: record.json, deviceId, kid: key.pin.kid, headers })) || {};
    const status = answer.status || 200;
    const extra = answer.headers || {};
    if (answer.events) {
      const { nonce, keys: rk } = await opened.responder.start();
      let chunks = [];
      for (let i = 0; i < answer.events.length; i++) {
        const final = answer.finalAt !== undefined ? i === answer.finalAt : i === answer.events.length - 1;
        chunks.push(await sealChunk(rk, i, JSON.stringify(answer.events[i]), final));
      }
      if (answer.tamper) chunks = answer.tamper(chunks);
      const text = (answer.pings ? ": ping\n\n" : "") + chunks.map((c) => `event: sealed\ndata: ${c}\n\n`).join("");
      const h = { "Content-Type": "text/event-stream", ...extra };
      if (!answer.plain) h["Privchat-E2E-Nonce"] = nonce;
      return new Response(answer.rawStream !== undefined ? answer.rawStream : text, { status, headers: h });
    }
    const payload = answer.body !== undefined ? answer.body : new TextEncoder().encode(JSON.stringify(answer.json === undefined ? null : answer.json));
    if (answer.plain) return new Response(payload, { status, headers: { "Content-Type": "application/json", ...extra } });
    const sealed = await opened.responder.seal(payload);
    const out = answer.flip ? flipBit(sealed.body) : sealed.body;
    return new Response(out, { status, headers: { "Content-Type": "application/privchat-e2e", "Privchat-E2E-Nonce": sealed.nonce, ...extra } });
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
