// End-to-end payload encryption between the page and the backend (docs/E2E.md is the contract):
// requests are sealed with HPKE (RFC 9180, base mode, DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 /
// AES-128-GCM) to the pinned server key through @hpke/core; each response is sealed under a key
// exported from the request's context with a fresh response nonce, in chunks numbered from 0 with
// the last one marked final (RFC 9458 §4.4, draft-ietf-ohai-chunked-ohttp). The response key
// derivation is WebCrypto's HKDF, its AEAD WebCrypto's AES-GCM.
//
// Version 2 hides the shape as well: every sealed body is padded to a size class inside the seal,
// and a reply stream is fixed-size sealed frames carrying a byte string of newline-terminated JSON
// events, cut without regard to event boundaries (FrameEventReader puts the events back together).
// Every sealed answer's content starts with its meta line (status, the server's current kid, the
// headers the page acts on): what the edge could change outside the seal is read from inside it.
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
const TAG = 16; // AES-128-GCM's tag
const LENGTH_BYTES = 4; // pad(M) starts with I2OSP(len(M), 4)
const FRAME_LENGTH_BYTES = 2; // a frame starts with I2OSP(k, 2)
const MIN_CLASS = 1024;
const MIB = 1048576;
/** The sizes a sealed frame may have (docs/E2E.md, "A reply stream"). */
export const FRAME_SIZES = Object.freeze([1024, 4096, 16384]);
export const VERSION = 2;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const FINAL = encoder.encode("final");
const REQUEST_INFO = "privchat e2e v2 request";
const RESPONSE_LABEL = encoder.encode("privchat e2e v2 response");

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

/** info = "privchat e2e v2 request" 0x00 METHOD 0x00 TARGET 0x00 DEVICE_ID */
export function requestInfo(method, target, deviceId) {
  return encoder.encode(`${REQUEST_INFO}\0${String(method).toUpperCase()}\0${target}\0${deviceId}`);
}

/** The Privchat-E2E header value: an RFC 8941 dictionary v=2, kid="…", enc=:…: */
export function requestHeader(kid, enc) {
  if (!/^[A-Za-z0-9_-]+$/.test(kid)) throw new E2EError("e2e_key_mismatch", "the server kid is not base64url");
  return `v=${VERSION}, kid="${kid}", enc=:${bytesToBase64(enc)}:`;
}

// The three members the dictionary may hold, each in its RFC 8941 form (a kid is base64url).
const HEADER_MEMBERS = {
  v: /^v=(\d{1,15})$/,
  kid: /^kid="([A-Za-z0-9_-]+)"$/,
  enc: /^enc=:([A-Za-z0-9+/]*={0,2}):$/,
};

/**
 * Parses a Privchat-E2E header value back (tests, the interop script): {kid, enc} or null. Exactly
 * the members v, kid and enc, in any order, each once; v must be 2 and enc 65 bytes.
 */
export function parseRequestHeader(value) {
  const found = {};
  for (const part of String(value || "").split(",")) {
    const member = part.trim();
    const name = Object.keys(HEADER_MEMBERS).find((k) => member.startsWith(`${k}=`));
    const m = name && HEADER_MEMBERS[name].exec(member);
    if (!m || Object.hasOwn(found, name)) return null;
    found[name] = m[1];
  }
  if (found.v === undefined || found.kid === undefined || found.enc === undefined || Number(found.v) !== VERSION) return null;
  let enc;
  try {
    enc = base64ToBytes(found.enc);
  } catch {
    return null;
  }
  return enc.length === NENC ? { kid: found.kid, enc } : null;
}

// ---------------------------------------------------------------- padding

/**
 * The sealed length S of a body of `len` JSON bytes: L = len + 20 (4 length bytes and the 16-byte
 * tag), then the smallest power of two >= L but at least 1024 while L <= 1 MiB, whole MiB above.
 */
export function sizeClass(len) {
  const need = len + LENGTH_BYTES + TAG;
  if (need > MIB) return MIB * Math.ceil(need / MIB);
  let size = MIN_CLASS;
  while (size < need) size *= 2;
  return size;
}

/** pad(M) = I2OSP(len(M), 4) || M || zero bytes, so that the sealed body is sizeClass(len(M)) long. */
export function padBody(bytes) {
  const m = toBytes(bytes);
  if (m.length > 0xffffffff) throw new RangeError("a body longer than 4 GiB cannot be padded");
  const out = new Uint8Array(sizeClass(m.length) - TAG); // zero-filled: the padding
  new DataView(out.buffer).setUint32(0, m.length);
  out.set(m, LENGTH_BYTES);
  return out;
}

/**
 * Takes M back out of an opened body that was `sealedLength` bytes on the wire. Strict, so a sender
 * cannot mark a body by its size or its padding: the length fits, every padding byte is zero, and
 * the sealed length is exactly the class len(M) gives. Anything else is an E2EError with `code`.
 */
export function unpadBody(bytes, sealedLength, code = "e2e_response_invalid") {
  const padded = toBytes(bytes);
  const refuse = (why) => new E2EError(code, `the sealed body's padding is wrong: ${why}`);
  if (padded.length < LENGTH_BYTES || padded.length !== sealedLength - TAG) throw refuse("its length is not its sealed length");
  const len = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint32(0);
  if (LENGTH_BYTES + len > padded.length) throw refuse("the length prefix does not fit");
  if (sizeClass(len) !== sealedLength) throw refuse(`${sealedLength} bytes is not the size class of ${len} bytes`);
  if (!allZero(padded, LENGTH_BYTES + len)) throw refuse("a padding byte is not zero");
  return padded.slice(LENGTH_BYTES, LENGTH_BYTES + len);
}

function allZero(bytes, from) {
  let acc = 0;
  for (let i = from; i < bytes.length; i++) acc |= bytes[i];
  return acc === 0;
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
  const body = bodyBytes === null || bodyBytes === undefined ? null : u8(await ctx.seal(padBody(bodyBytes), EMPTY));
  const secret = u8(await ctx.export(RESPONSE_LABEL, NK));
  return { header: requestHeader(keyId, enc), body, enc, opener: new ResponseOpener(secret, enc) };
}

// ---------------------------------------------------------------- the meta line

/** The only headers an answer's meta line carries (lower case): the ones the page acts on. */
export const META_HEADERS = Object.freeze(["retry-after", "content-disposition"]);
const META_MEMBERS = ["headers", "kid", "status"];

/**
 * Parses one meta line (its bytes without the line feed): {status, kid, headers} exactly, status an
 * HTTP status, kid base64url, headers an object of META_HEADERS names with string values. Anything
 * else is an E2EError with `code`: a sealed answer whose meta line cannot be read is not believed.
 */
export function parseMeta(lineBytes, code = "e2e_response_invalid") {
  const refuse = (why) => new E2EError(code, `the answer's meta line ${why}`);
  let meta;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(toBytes(lineBytes)));
  } catch {
    throw refuse("is not JSON");
  }
  if (!meta || typeof meta !== "object" || Array.isArray(meta)) throw refuse("is not an object");
  if (Object.keys(meta).sort().join() !== META_MEMBERS.join()) throw refuse("does not have exactly status, kid and headers");
  if (!Number.isInteger(meta.status) || meta.status < 100 || meta.status > 599) throw refuse("has no HTTP status");
  if (typeof meta.kid !== "string" || !/^[A-Za-z0-9_-]+$/.test(meta.kid)) throw refuse("names no key");
  const h = meta.headers;
  if (!h || typeof h !== "object" || Array.isArray(h)) throw refuse("has no headers object");
  for (const [name, value] of Object.entries(h)) {
    if (!META_HEADERS.includes(name) || typeof value !== "string") throw refuse(`carries a header it may not (${name})`);
  }
  return { status: meta.status, kid: meta.kid, headers: { ...h } };
}

/** A one-chunk answer's opened content: META, a line feed, then the body. Returns {meta, body}. */
export function splitMeta(content, code = "e2e_response_invalid") {
  const bytes = toBytes(content);
  const at = bytes.indexOf(0x0a);
  if (at === -1) throw new E2EError(code, "the answer has no meta line");
  return { meta: parseMeta(bytes.subarray(0, at), code), body: bytes.slice(at + 1) };
}

/** The meta line as the server writes it (tests, the interop script): JSON and a line feed. */
export function metaLine({ status = 200, kid, headers = {} }) {
  return encoder.encode(`${JSON.stringify({ status, kid, headers })}\n`);
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

  /**
   * A one-chunk answer (chunk 0, final). nonce: the header value or bytes. Returns its content,
   * unpadded: META || the body (splitMeta takes them apart).
   */
  async open(nonce, ciphertext) {
    const n = typeof nonce === "string" ? parseNonce(nonce) : nonce;
    if (!n) throw new E2EError("e2e_unsealed", "the answer has no response nonce");
    return openResponse({ secret: this.secret, enc: this.enc, nonce: n, ciphertext });
  }

  /** A frame opener for an event stream answered with this nonce. */
  async stream(nonce) {
    const n = typeof nonce === "string" ? parseNonce(nonce, "e2e_event_invalid") : nonce;
    if (!n) throw new E2EError("e2e_unsealed", "the stream has no response nonce");
    return new StreamOpener(await responseKeys(this.secret, this.enc, n));
  }
}

/** Opens a one-chunk response (chunk 0 with aad "final") and takes its padding off. */
export async function openResponse({ secret, enc, nonce, ciphertext }) {
  const keys = await responseKeys(secret, enc, nonce);
  const sealed = toBytes(ciphertext);
  let padded;
  try {
    padded = await aesOpen(keys, 0, FINAL, sealed);
  } catch (err) {
    throw new E2EError("e2e_response_invalid", "the sealed answer does not open", { cause: err });
  }
  return unpadBody(padded, sealed.length, "e2e_response_invalid");
}

/**
 * Opens the frames of one stream in order: frame n with counter n. A frame that is not one of the
 * FRAME_SIZES, does not open (dropped, reordered, replayed, tampered), has bad padding or comes
 * after the final one is e2e_event_invalid; end() says e2e_truncated unless the final frame was seen.
 */
export class StreamOpener {
  constructor(keys) {
    this.keys = keys;
    this.counter = 0;
    this.finished = false;
    this.broken = false;
  }

  fail(message) {
    this.broken = true;
    return new E2EError("e2e_event_invalid", message);
  }

  /** @returns {Promise<{payload: Uint8Array, final: boolean, index: number}>} */
  async next(frame) {
    if (this.broken) throw new E2EError("e2e_event_invalid", "the stream already failed");
    if (this.finished) throw this.fail("a frame after the final one");
    const ct = typeof frame === "string" ? decodeChunk(frame) : toBytes(frame);
    const i = this.counter;
    if (!ct || !FRAME_SIZES.includes(ct.length)) throw this.fail(`frame ${i} is not ${FRAME_SIZES.join(", ")} bytes long`);
    let plaintext = null;
    let final = false;
    // Nothing outside tells a final frame apart (an SSE event is just text), so its AAD does: try both.
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
    if (!plaintext) throw this.fail(`frame ${i} does not open`);
    const k = (plaintext[0] << 8) | plaintext[1];
    if (FRAME_LENGTH_BYTES + k > ct.length - TAG) throw this.fail(`frame ${i} says it carries ${k} bytes, more than fit`);
    if (!allZero(plaintext, FRAME_LENGTH_BYTES + k)) throw this.fail(`frame ${i}'s padding is not zero`);
    this.counter = i + 1;
    this.finished = final;
    return { payload: plaintext.slice(FRAME_LENGTH_BYTES, FRAME_LENGTH_BYTES + k), final, index: i };
  }

  /** The stream ended: throws e2e_truncated unless its final frame came. */
  end() {
    if (!this.finished && !this.broken) throw new E2EError("e2e_truncated", `the stream ended after ${this.counter} frames without its final one`);
  }
}

const TERMINAL = new Set(["done", "error"]);
const LF = 0x0a;

/**
 * Puts the events of a stream back together from its opened frames' payloads. The frames cut the
 * byte string anywhere (inside an event, inside a UTF-8 character), so bytes are kept until a line
 * feed ends an event and only whole lines are decoded. The first line is the answer's META (kept in
 * `meta`, not an event); every later one an event. A done or error event is the last one: its line
 * feed must be the last byte of the final frame, and the final frame must end with it.
 * Failures are e2e_event_invalid; end() is e2e_truncated unless the final frame came.
 */
export class FrameEventReader {
  constructor() {
    this.meta = null; // the stream's meta line, once its line feed came
    this.buffer = EMPTY;
    this.finished = false;
    this.broken = false;
    this.decoder = new TextDecoder("utf-8", { fatal: true });
  }

  fail(message, cause = undefined) {
    this.broken = true;
    return new E2EError("e2e_event_invalid", message, cause ? { cause } : undefined);
  }

  /**
   * One opened frame: its payload and whether it was sealed final. Returns the events it completes,
   * in order: [{id, event, data, line}] (line: the event's JSON text without its line feed). A frame
   * with a broken rule returns nothing: none of its events is shown.
   */
  push(payload, final) {
    if (this.broken) throw new E2EError("e2e_event_invalid", "the stream already failed");
    if (this.finished) throw this.fail("a frame after the final one");
    const bytes = concat(this.buffer, toBytes(payload));
    const events = [];
    let from = 0;
    for (let at = bytes.indexOf(LF); at !== -1; at = bytes.indexOf(LF, from)) {
      if (this.meta === null) {
        try {
          this.meta = parseMeta(bytes.subarray(from, at), "e2e_event_invalid");
        } catch (err) {
          throw this.fail(err.message);
        }
        from = at + 1;
        continue;
      }
      const ev = this.parse(bytes.subarray(from, at));
      from = at + 1;
      if (TERMINAL.has(ev.event)) {
        if (!final) throw this.fail(`a "${ev.event}" event in a frame not sealed final`);
        if (from !== bytes.length) throw this.fail(`bytes after the "${ev.event}" event`);
        this.finished = true;
      }
      events.push(ev);
    }
    if (final && !this.finished) throw this.fail(this.meta === null ? "the stream has no meta line" : "the final frame does not end with a done or error event");
    this.buffer = bytes.slice(from);
    return events;
  }

  /** One event's line: a JSON object {id, event, data} in UTF-8. */
  parse(lineBytes) {
    let line;
    let inner;
    try {
      line = this.decoder.decode(lineBytes);
      inner = JSON.parse(line);
    } catch (err) {
      throw this.fail("an event is not JSON", err);
    }
    if (!inner || typeof inner !== "object" || Array.isArray(inner) || typeof inner.event !== "string") {
      throw this.fail("an event is not an {id, event, data} object");
    }
    const id = typeof inner.id === "string" ? inner.id : null;
    return { id, event: inner.event, data: inner.data === undefined ? null : inner.data, line };
  }

  /** The stream ended: throws e2e_truncated unless its final frame came. */
  end() {
    if (!this.finished && !this.broken) throw new E2EError("e2e_truncated", "the stream ended without its final frame");
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
  let plaintext = null;
  if (body !== null && body !== undefined) {
    const sealed = toBytes(body);
    plaintext = unpadBody(u8(await ctx.open(sealed, EMPTY)), sealed.length, "e2e_open_failed");
  }
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

  /** A one-chunk answer, padded: {nonce, body}. `plaintext` is the whole content: META || body. */
  async seal(plaintext, nonce = null) {
    const { nonce: header, keys } = await this.start(nonce);
    return { nonce: header, body: await aesSeal(keys, 0, FINAL, padBody(plaintext)) };
  }

  /**
   * Seals the frames of a stream in order: frames [{payload, size}] (size one of FRAME_SIZES), the
   * last one final. Returns {nonce, chunks: [base64url]}.
   */
  async sealFrames(frames, nonce = null) {
    const { nonce: header, keys } = await this.start(nonce);
    const chunks = [];
    for (let i = 0; i < frames.length; i++) {
      chunks.push(await sealChunk(keys, i, framePlaintext(frames[i].payload, frames[i].size), i === frames.length - 1));
    }
    return { nonce: header, chunks };
  }
}

/** frame plaintext = I2OSP(k, 2) || k payload bytes || (F - 18 - k) zero bytes */
export function framePlaintext(payload, size) {
  const p = toBytes(payload);
  if (!FRAME_SIZES.includes(size)) throw new RangeError(`${size} is not a frame size`);
  if (p.length > size - TAG - FRAME_LENGTH_BYTES) throw new RangeError(`${p.length} bytes do not fit in a ${size}-byte frame`);
  const out = new Uint8Array(size - TAG);
  out[0] = p.length >> 8;
  out[1] = p.length & 0xff;
  out.set(p, FRAME_LENGTH_BYTES);
  return out;
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
