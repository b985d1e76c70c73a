// RFC 9421 request signing for privchat, matching the backend byte for byte.
//
// Runs unchanged in browsers and in Node 20: only globalThis.crypto (WebCrypto)
// and TextEncoder are used, no Node imports.
//
// Profile (SECURITY.md section 3, and the backend's auth/signatures.py, which checks it):
//   covered components  ("@method" "@path" "@query" "content-digest" "privchat-e2e")
//                       (privchat-e2e: the Privchat-E2E header of docs/E2E.md, its value as sent)
//   parameters          created, nonce, keyid, alg="ecdsa-p256-sha256", tag="privchat" (in that order)
//   signature label     sig1
//   signature value     raw r||s (64 bytes) as WebCrypto returns it, never DER

const subtle = () => {
  const c = globalThis.crypto;
  if (!c || !c.subtle) {
    throw new Error("WebCrypto (crypto.subtle) is not available: the page must be served over https or from localhost.");
  }
  return c.subtle;
};

export const ALGORITHM = "ecdsa-p256-sha256";
export const TAG = "privchat";
export const LABEL = "sig1";
export const COVERED_COMPONENTS = ["@method", "@path", "@query", "content-digest", "privchat-e2e"];

const ECDSA_KEYGEN = { name: "ECDSA", namedCurve: "P-256" };
const ECDSA_SIGN = { name: "ECDSA", hash: "SHA-256" };

const encoder = new TextEncoder();

// ---------------------------------------------------------------- encodings

export function bytesToBase64(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let bin = "";
  for (let i = 0; i < u8.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

export function base64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function bytesToBase64Url(bytes) {
  return bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function base64UrlToBytes(s) {
  let b64 = String(s).replace(/-/g, "+").replace(/_/g, "/");
  while (b64.length % 4) b64 += "=";
  return base64ToBytes(b64);
}

export function toBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError("request body must be a string or bytes to be signed");
}

async function sha256(bytes) {
  return new Uint8Array(await subtle().digest("SHA-256", bytes));
}

// ---------------------------------------------------------------- keys

/** A fresh ECDSA P-256 device key pair. The private key can never be exported. */
export async function generateDeviceKey() {
  return subtle().generateKey(ECDSA_KEYGEN, false, ["sign", "verify"]);
}

/** The public key as a minimal JWK: {kty, crv, x, y} and nothing else. */
export async function exportPublicJwk(publicKey) {
  const jwk = await subtle().exportKey("jwk", publicKey);
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.x || !jwk.y) {
    throw new Error("device key is not an EC P-256 key");
  }
  return { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
}

/** RFC 7638 canonical JSON of an EC public JWK (members in lexicographic order, no whitespace). */
export function canonicalJwk(jwk) {
  if (!jwk || jwk.kty !== "EC" || typeof jwk.crv !== "string" || typeof jwk.x !== "string" || typeof jwk.y !== "string") {
    throw new Error("an EC JWK with crv, x and y is required");
  }
  return `{"crv":${JSON.stringify(jwk.crv)},"kty":"EC","x":${JSON.stringify(jwk.x)},"y":${JSON.stringify(jwk.y)}}`;
}

/** RFC 7638 SHA-256 thumbprint, base64url without padding. This is the device id and keyid. */
export async function jwkThumbprint(jwk) {
  return bytesToBase64Url(await sha256(encoder.encode(canonicalJwk(jwk))));
}

/** "3F2A 9C01 77BE 0D4E": first 8 bytes of the thumbprint, uppercase hex, groups of 4. */
export function shortFingerprint(deviceId) {
  const bytes = base64UrlToBytes(deviceId).subarray(0, 8);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
  return hex.match(/.{1,4}/g).join(" ");
}

// ---------------------------------------------------------------- RFC 9530 / 9421

/** RFC 9530 Content-Digest header value for the body bytes (also for an empty body). */
export async function contentDigest(body) {
  return `sha-256=:${bytesToBase64(await sha256(toBytes(body)))}:`;
}

/** base64url of 16 random bytes. */
export function makeNonce() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return bytesToBase64Url(b);
}

function checkParamValue(name, value) {
  // sf-string: printable ASCII, no DQUOTE or backslash (we never need escapes).
  if (typeof value !== "string" || !/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(value)) {
    throw new Error(`signature parameter ${name} has characters that cannot be signed`);
  }
}

/** The Signature-Input member value (without the "sig1=" label). */
export function signatureParams({ created, nonce, keyId }) {
  if (!Number.isInteger(created) || created < 0) throw new Error("created must be a non-negative integer");
  checkParamValue("nonce", nonce);
  checkParamValue("keyid", keyId);
  const components = COVERED_COMPONENTS.map((c) => `"${c}"`).join(" ");
  return `(${components});created=${created};nonce="${nonce}";keyid="${keyId}";alg="${ALGORITHM}";tag="${TAG}"`;
}

/** Splits a URL (absolute or path-only) into the @path and @query derived components, as sent. */
export function pathAndQuery(url) {
  // Relative URLs ("/api/chat") are resolved against a file: base, which normalises paths the
  // same way as http(s) without naming any host.
  const u = /^[a-z][a-z0-9+.-]*:/i.test(url) ? new URL(url) : new URL(url, "file:///");
  // URL keeps the percent-encoding of the path and query as they will go on the wire.
  const path = u.pathname || "/";
  const query = "?" + (u.search.startsWith("?") ? u.search.slice(1) : u.search);
  return { path, query };
}

/** The RFC 9421 signature base: lines joined with "\n", no trailing newline. */
export function signatureBase({ method, path, query, contentDigest: digest, e2e, params }) {
  const q = query === undefined || query === null || query === "" ? "?" : query.startsWith("?") ? query : "?" + query;
  return [
    `"@method": ${String(method).toUpperCase()}`,
    `"@path": ${path || "/"}`,
    `"@query": ${q}`,
    `"content-digest": ${digest}`,
    `"privchat-e2e": ${e2eFieldValue(e2e)}`,
    `"@signature-params": ${params}`,
  ].join("\n");
}

/** An HTTP field's value as RFC 9421 §2.1 covers it: leading and trailing whitespace removed. */
function e2eFieldValue(value) {
  if (typeof value !== "string" || !value.trim()) throw new Error("the Privchat-E2E header value is required to sign a request");
  if (/[\r\n\0]/.test(value)) throw new Error("the Privchat-E2E header value has a line break");
  return value.trim();
}

/**
 * Signs a request. Returns the three headers to send:
 * {"Content-Digest", "Signature-Input", "Signature"}.
 *
 * `body` is the body as sent (the sealed bytes); `e2e` the Privchat-E2E header value as sent.
 * `now` is milliseconds since the epoch, already corrected by the server clock offset.
 */
export async function signRequest({ privateKey, keyId, method, url, body, e2e, now = Date.now(), nonce = makeNonce() }) {
  const bytes = toBytes(body);
  const digest = await contentDigest(bytes);
  const { path, query } = pathAndQuery(url);
  const params = signatureParams({ created: Math.floor(now / 1000), nonce, keyId });
  const base = signatureBase({ method, path, query, contentDigest: digest, e2e, params });
  const sig = new Uint8Array(await subtle().sign(ECDSA_SIGN, privateKey, encoder.encode(base)));
  if (sig.length !== 64) throw new Error(`unexpected ECDSA signature length ${sig.length} (want raw r||s, 64 bytes)`);
  return {
    "Content-Digest": digest,
    "Signature-Input": `${LABEL}=${params}`,
    Signature: `${LABEL}=:${bytesToBase64(sig)}:`,
  };
}

/** Verifies a raw r||s signature over a base (used by tests and for self-checks). */
export async function verifyBase(publicKey, base, signatureBytes) {
  return subtle().verify(ECDSA_SIGN, publicKey, signatureBytes, encoder.encode(base));
}
