// End-to-end payload encryption between the page and the backend (docs/E2E.md is the contract):
// requests are sealed with HPKE (RFC 9180, base mode, DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 /
// AES-128-GCM) to the pinned server key through @hpke/core; each response is sealed under a key
// exported from the request's context with a fresh response nonce, in chunks numbered from 0 with
// the last one marked final (RFC 9458 §4.4, draft-ietf-ohai-chunked-ohttp). The response key
// derivation is WebCrypto's HKDF, its AEAD WebCrypto's AES-GCM.
//
// Stateless: every function takes what it needs; the pinned key lives with the device (keystore,
// session store). Failures are E2EError (errors.js) with the codes docs/E2E.md names.

import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from "@hpke/core";
import { E2EError } from "./errors.js";
import { base64ToBytes, base64UrlToBytes, bytesToBase64, bytesToBase64Url, jwkThumbprint, shortFingerprint, toBytes } from "./signing.js";

export const REQUEST_HEADER = "Privchat-E2E";
export const NONCE_HEADER = "Privchat-E2E-Nonce";
export const CONTENT_TYPE = "application/privchat-e2e";
export const SEALED_EVENT = "sealed";

const NENC = 65;
const NK = 16;
const NN = 12;
const RESPONSE_NONCE_LEN = 16;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const FINAL = encoder.encode("final");
const REQUEST_INFO = "privchat e2e v1 request";
const RESPONSE_LABEL = encoder.encode("privchat e2e v1 response");

let suite = null;
/** The one suite privchat speaks (made on first use, so importing this module costs nothing). */
export function cipherSuite() {
  if (!suite) suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  return suite;
}

const subtle = () => globalThis.crypto.subtle;
const u8 = (buf) => (buf instanceof Uint8Array ? buf : new Uint8Array(buf));

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------- the server key

/**
 * Imports the server's public JWK: {kid, fingerprint, jwk, publicKey}. The kid is computed here
 * (RFC 7638 thumbprint); `expectedKid` (the pinned one, the link's, or the kid the server named)
 * must equal it, else e2e_key_mismatch.
 */
export async function importServerKey(jwk, expectedKid = null) {
  if (!jwk || jwk.kty !== "EC" || jwk.crv !== "P-256" || typeof jwk.x !== "string" || typeof jwk.y !== "string") {
    throw new E2EError("e2e_key_mismatch", "the server key is not an EC P-256 public JWK");
  }
  const minimal = { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
  const kid = await jwkThumbprint(minimal);
  if (expectedKid !== null && expectedKid !== undefined && expectedKid !== kid) {
    throw new E2EError("e2e_key_mismatch", `the server key's thumbprint is ${kid}, not ${expectedKid}`);
  }
  let publicKey;
  try {
    publicKey = await cipherSuite().kem.importKey("jwk", minimal, true);
  } catch (err) {
    throw new E2EError("e2e_key_mismatch", "the server key is not a valid P-256 point", { cause: err });
  }
  return { kid, fingerprint: shortFingerprint(kid), jwk: minimal, publicKey };
}

/** What is kept with the device: {kid, jwk, fingerprint} (plain data, structured-cloneable). */
export function pinnable(key) {
  return { kid: key.kid, jwk: { ...key.jwk }, fingerprint: key.fingerprint };
}

// ---------------------------------------------------------------- a request

/** info = "privchat e2e v1 request" 0x00 METHOD 0x00 TARGET 0x00 DEVICE_ID */
export function requestInfo(method, target, deviceId) {
  return encoder.encode(`${REQUEST_INFO}\0${String(method).toUpperCase()}\0${target}\0${deviceId}`);
}

/** The Privchat-E2E header value: an RFC 8941 dictionary kid="…", enc=:…: */
export function requestHeader(kid, enc) {
  if (!/^[A-Za-z0-9_-]+$/.test(kid)) throw new E2EError("e2e_key_mismatch", "the server kid is not base64url");
  return `kid="${kid}", enc=:${bytesToBase64(enc)}:`;
}

/** Parses a Privchat-E2E header value back (tests, the interop script): {kid, enc} or null. */
export function parseRequestHeader(value) {
  const m = /^\s*kid="([A-Za-z0-9_-]+)"\s*,\s*enc=:([A-Za-z0-9+/]+={0,2}):\s*$/.exec(String(value || ""));
  if (!m) return null;
  const enc = base64ToBytes(m[2]);
  return enc.length === NENC ? { kid: m[1], enc } : null;
}

/**
 * Seals one request to the server key.
 * @param {{serverKey: {kid?, publicKey?, jwk?}|CryptoKey, kid?: string, method: string, target: string,
 *          deviceId: string, bodyBytes?: Uint8Array|string|null}} p
 *   target     the path and query exactly as signed ("/api/history?limit=50")
 *   bodyBytes  the JSON bytes; null or undefined for a request without a body
 * @returns {{header: string, body: Uint8Array|null, enc: Uint8Array, opener: ResponseOpener}}
 */
export async function sealRequest({ serverKey, kid, method, target, deviceId, bodyBytes = null }) {
  let publicKey = serverKey;
  let keyId = kid;
  if (serverKey && !(typeof CryptoKey !== "undefined" && serverKey instanceof CryptoKey) && !serverKey.algorithm) {
    const imported = serverKey.publicKey ? serverKey : await importServerKey(serverKey.jwk || serverKey, serverKey.kid || kid || null);
    publicKey = imported.publicKey;
    keyId = keyId || imported.kid;
  }
  if (!publicKey || !keyId) throw new E2EError("e2e_key_unpinned", "no server key to seal to");
  const ctx = await cipherSuite().createSenderContext({ recipientPublicKey: publicKey, info: requestInfo(method, target, deviceId) });
  const enc = u8(ctx.enc);
  const body = bodyBytes === null || bodyBytes === undefined ? null : u8(await ctx.seal(toBytes(bodyBytes), EMPTY));
  const secret = u8(await ctx.export(RESPONSE_LABEL, NK));
  return { header: requestHeader(keyId, enc), body, enc, opener: new ResponseOpener(secret, enc) };
}

// ---------------------------------------------------------------- a response

/** key and nonce_base for one response (HKDF-SHA256 Extract then Expand, salt = enc || nonce). */
export async function responseKeys(secret, enc, nonce) {
  const salt = concat(u8(enc), u8(nonce));
  const ikm = await subtle().importKey("raw", u8(secret), "HKDF", false, ["deriveBits"]);
  const derive = async (info, n) =>
    u8(await subtle().deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(info) }, ikm, n * 8));
  const key = await derive("key", NK);
  const nonceBase = await derive("nonce", NN);
  const aesKey = await subtle().importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { aesKey, nonceBase };
}

/** nonce_base XOR I2OSP(i, 12) */
export function chunkNonce(nonceBase, i) {
  const out = new Uint8Array(nonceBase);
  let n = i;
  for (let k = NN - 1; k >= 0 && n > 0; k--) {
    out[k] ^= n % 256;
    n = Math.floor(n / 256);
  }
  return out;
}

async function aesOpen(keys, i, aad, ct) {
  return u8(await subtle().decrypt({ name: "AES-GCM", iv: chunkNonce(keys.nonceBase, i), additionalData: aad }, keys.aesKey, ct));
}

async function aesSeal(keys, i, aad, pt) {
  return u8(await subtle().encrypt({ name: "AES-GCM", iv: chunkNonce(keys.nonceBase, i), additionalData: aad }, keys.aesKey, pt));
}

/** The response nonce from its header (base64url, no padding); null when absent. */
export function parseNonce(value, code = "e2e_response_invalid") {
  if (value === null || value === undefined || value === "") return null;
  let nonce;
  try {
    nonce = base64UrlToBytes(String(value).trim());
  } catch {
    nonce = null;
  }
  if (!nonce || nonce.length !== RESPONSE_NONCE_LEN) throw new E2EError(code, "the response nonce is not 16 bytes");
  return nonce;
}

/** Opens the responses to one request (it keeps the secret exported from the request's context). */
export class ResponseOpener {
  constructor(secret, enc) {
    this.secret = u8(secret);
    this.enc = u8(enc);
  }

  /** A one-chunk answer (chunk 0, final). nonce: the header value or bytes. Returns the plaintext bytes. */
  async open(nonce, ciphertext) {
    const n = typeof nonce === "string" ? parseNonce(nonce) : nonce;
    if (!n) throw new E2EError("e2e_unsealed", "the answer has no response nonce");
    return openResponse({ secret: this.secret, enc: this.enc, nonce: n, ciphertext });
  }

  /** A chunk opener for an event stream answered with this nonce. */
  async stream(nonce) {
    const n = typeof nonce === "string" ? parseNonce(nonce, "e2e_event_invalid") : nonce;
    if (!n) throw new E2EError("e2e_unsealed", "the stream has no response nonce");
    return new StreamOpener(await responseKeys(this.secret, this.enc, n));
  }
}

/** Opens a one-chunk response: chunk 0 with aad "final". */
export async function openResponse({ secret, enc, nonce, ciphertext }) {
  const keys = await responseKeys(secret, enc, nonce);
  try {
    return await aesOpen(keys, 0, FINAL, toBytes(ciphertext));
  } catch (err) {
    throw new E2EError("e2e_response_invalid", "the sealed answer does not open", { cause: err });
  }
}

/**
 * Opens the chunks of one stream in order: chunk n with counter n. A chunk that does not open
 * (dropped, reordered, replayed, tampered) or comes after the final one is e2e_event_invalid;
 * end() says e2e_truncated unless the final chunk was seen.
 */
export class StreamOpener {
  constructor(keys) {
    this.keys = keys;
    this.counter = 0;
    this.finished = false;
    this.broken = false;
  }

  /** @returns {Promise<{plaintext: Uint8Array, final: boolean, index: number}>} */
  async next(chunk) {
    if (this.broken) throw new E2EError("e2e_event_invalid", "the stream already failed");
    if (this.finished) {
      this.broken = true;
      throw new E2EError("e2e_event_invalid", "data after the final event");
    }
    const ct = typeof chunk === "string" ? decodeChunk(chunk) : toBytes(chunk);
    const i = this.counter;
    let plaintext = null;
    let final = false;
    if (ct) {
      // No framing tells a final chunk apart (an SSE event is just text), so its AAD does: try both.
      try {
        plaintext = await aesOpen(this.keys, i, EMPTY, ct);
      } catch {
        try {
          plaintext = await aesOpen(this.keys, i, FINAL, ct);
          final = true;
        } catch {
          plaintext = null;
        }
      }
    }
    if (!plaintext) {
      this.broken = true;
      throw new E2EError("e2e_event_invalid", `event ${i} does not open`);
    }
    this.counter = i + 1;
    this.finished = final;
    return { plaintext, final, index: i };
  }

  /** The stream ended: throws e2e_truncated unless its final chunk came. */
  end() {
    if (!this.finished && !this.broken) throw new E2EError("e2e_truncated", `the stream ended after ${this.counter} events without its final one`);
  }
}

function decodeChunk(text) {
  try {
    return /^[A-Za-z0-9_-]*$/.test(text.trim()) ? base64UrlToBytes(text.trim()) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- the server's half (tests, interop)

/**
 * What the backend does, for tests and the interop script: opens a request with the server's
 * private key and seals its answers. Not used by the page.
 */
export async function openRequest({ privateKey, header, method, target, deviceId, body = null }) {
  const parsed = parseRequestHeader(header);
  if (!parsed) throw new E2EError("e2e_malformed", "not a Privchat-E2E header");
  const ctx = await cipherSuite().createRecipientContext({ recipientKey: privateKey, enc: parsed.enc, info: requestInfo(method, target, deviceId) });
  const plaintext = body === null || body === undefined ? null : u8(await ctx.open(toBytes(body), EMPTY));
  const secret = u8(await ctx.export(RESPONSE_LABEL, NK));
  return { kid: parsed.kid, enc: parsed.enc, plaintext, responder: new ResponseSealer(secret, parsed.enc) };
}

export class ResponseSealer {
  constructor(secret, enc) {
    this.secret = u8(secret);
    this.enc = u8(enc);
  }

  /** {nonce: header value, keys} for one response; nonce bytes may be given (fixtures). */
  async start(nonce = null) {
    const n = nonce ? u8(nonce) : globalThis.crypto.getRandomValues(new Uint8Array(RESPONSE_NONCE_LEN));
    return { nonce: bytesToBase64Url(n), keys: await responseKeys(this.secret, this.enc, n) };
  }

  /** A one-chunk answer: {nonce, body}. */
  async seal(plaintext, nonce = null) {
    const { nonce: header, keys } = await this.start(nonce);
    return { nonce: header, body: await aesSeal(keys, 0, FINAL, toBytes(plaintext)) };
  }

  /** Seals the chunks of a stream: {nonce, chunks: [base64url]}; the last one is final. */
  async sealStream(plaintexts, nonce = null) {
    const { nonce: header, keys } = await this.start(nonce);
    const chunks = [];
    for (let i = 0; i < plaintexts.length; i++) {
      chunks.push(bytesToBase64Url(await aesSeal(keys, i, i === plaintexts.length - 1 ? FINAL : EMPTY, toBytes(plaintexts[i]))));
    }
    return { nonce: header, chunks };
  }
}

/** One chunk sealed with an explicit index and final flag (tests that break the rules). */
export async function sealChunk(keys, i, plaintext, final) {
  return bytesToBase64Url(await aesSeal(keys, i, final ? FINAL : EMPTY, toBytes(plaintext)));
}

// ---------------------------------------------------------------- pairing

/** upper case, without "-" and spaces, O→0, I and L→1 */
export function normaliseCode(code) {
  return String(code).toUpperCase().replace(/[-\s]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
}

async function pairingMac(label, code, deviceId, kid) {
  const key = await subtle().importKey("raw", encoder.encode(normaliseCode(code)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const msg = encoder.encode(`${label}\0${deviceId}\0${kid}`);
  return bytesToBase64Url(u8(await subtle().sign("HMAC", key, msg)));
}

/** pairing_proof = base64url(HMAC-SHA256(code, "privchat pairing proof v1" 0x00 device_id 0x00 kid)) */
export function pairingProof(code, deviceId, kid) {
  return pairingMac("privchat pairing proof v1", code, deviceId, kid);
}

/** key_confirmation = base64url(HMAC-SHA256(code, "privchat pairing confirm v1" 0x00 device_id 0x00 kid)) */
export function keyConfirmation(code, deviceId, kid) {
  return pairingMac("privchat pairing confirm v1", code, deviceId, kid);
}

/** Throws e2e_key_mismatch unless `confirmation` is the key confirmation for this code, device and kid. */
export async function checkKeyConfirmation(confirmation, code, deviceId, kid) {
  const want = await keyConfirmation(code, deviceId, kid);
  const got = typeof confirmation === "string" ? confirmation.replace(/=+$/, "") : "";
  let diff = want.length ^ got.length;
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ (got.charCodeAt(i) || 0);
  if (diff !== 0) throw new E2EError("e2e_key_mismatch", "the server's key confirmation does not match the code and the pinned key");
}
