import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  canonicalJwk,
  contentDigest,
  exportPublicJwk,
  generateDeviceKey,
  jwkThumbprint,
  pathAndQuery,
  shortFingerprint,
  signatureBase,
  signatureParams,
  signRequest,
  verifyBase,
  base64ToBytes,
  base64UrlToBytes,
} from "../src/lib/signing.js";

// The EC P-256 public key of RFC 7515 Appendix A.3.
const RFC7515_JWK = {
  kty: "EC",
  crv: "P-256",
  x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
  y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
};

const sha256b64url = (s) => createHash("sha256").update(s).digest("base64url");
const sha256b64 = (s) => createHash("sha256").update(s).digest("base64");

test("canonical JWK has the RFC 7638 member order and no whitespace", () => {
  assert.equal(
    canonicalJwk({ ...RFC7515_JWK, d: "secret", alg: "ES256", use: "sig" }),
    '{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}',
  );
});

test("thumbprint is base64url SHA-256 of the canonical JSON, computed independently", async () => {
  const canonical =
    '{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}';
  const tp = await jwkThumbprint(RFC7515_JWK);
  assert.equal(tp, sha256b64url(canonical));
  assert.equal(tp.length, 43);
  assert.match(tp, /^[A-Za-z0-9_-]{43}$/);
  // Member order of the input does not matter.
  assert.equal(await jwkThumbprint({ y: RFC7515_JWK.y, x: RFC7515_JWK.x, crv: "P-256", kty: "EC" }), tp);
});

test("short fingerprint is the first 8 bytes in uppercase hex, groups of 4", () => {
  const id = Buffer.from([0x3f, 0x2a, 0x9c, 0x01, 0x77, 0xbe, 0x0d, 0x4e, 0xff, 0xee]).toString("base64url");
  assert.equal(shortFingerprint(id), "3F2A 9C01 77BE 0D4E");
});

test("content digest of the empty body and of a known string", async () => {
  assert.equal(await contentDigest(""), "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  assert.equal(await contentDigest(new Uint8Array(0)), "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  assert.equal(await contentDigest(undefined), "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  // RFC 9530 §B.1 example body.
  assert.equal(await contentDigest('{"hello": "world"}'), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
  const s = 'héllo "wörld" ✓';
  assert.equal(await contentDigest(s), `sha-256=:${sha256b64(Buffer.from(s, "utf8"))}:`);
});

test("signature params and base have the exact profile text", () => {
  const params = signatureParams({ created: 1700000000, nonce: "bm9uY2Vub25jZW5vbmNl", keyId: "abc-_DEF" });
  assert.equal(
    params,
    '("@method" "@path" "@query" "content-digest" "privchat-e2e");created=1700000000;nonce="bm9uY2Vub25jZW5vbmNl";keyid="abc-_DEF";alg="ecdsa-p256-sha256";tag="privchat"',
  );
  const base = signatureBase({
    method: "post",
    path: "/api/chat",
    query: "?",
    contentDigest: "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
    e2e: 'kid="K1d", enc=:BA==:',
    params,
  });
  assert.equal(
    base,
    [
      '"@method": POST',
      '"@path": /api/chat',
      '"@query": ?',
      '"content-digest": sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:',
      '"privchat-e2e": kid="K1d", enc=:BA==:',
      '"@signature-params": ("@method" "@path" "@query" "content-digest" "privchat-e2e");created=1700000000;nonce="bm9uY2Vub25jZW5vbmNl";keyid="abc-_DEF";alg="ecdsa-p256-sha256";tag="privchat"',
    ].join("\n"),
  );
  assert.ok(!base.endsWith("\n"));
});

test("@path and @query are taken as sent", () => {
  assert.deepEqual(pathAndQuery("http://127.0.0.1:8765/api/history?limit=50&before=2"), {
    path: "/api/history",
    query: "?limit=50&before=2",
  });
  assert.deepEqual(pathAndQuery("http://127.0.0.1:8765/api/health"), { path: "/api/health", query: "?" });
  assert.deepEqual(pathAndQuery("https://api.example.com"), { path: "/", query: "?" });
  assert.deepEqual(pathAndQuery("https://api.example.com/api/history/a%20b?x=%2F"), {
    path: "/api/history/a%20b",
    query: "?x=%2F",
  });
  assert.deepEqual(pathAndQuery("/api/chat"), { path: "/api/chat", query: "?" });
});

test("generated device key is ECDSA P-256 and the private key is not extractable", async () => {
  const kp = await generateDeviceKey();
  assert.equal(kp.privateKey.extractable, false);
  assert.equal(kp.privateKey.algorithm.name, "ECDSA");
  assert.equal(kp.privateKey.algorithm.namedCurve, "P-256");
  await assert.rejects(() => crypto.subtle.exportKey("jwk", kp.privateKey));
  const jwk = await exportPublicJwk(kp.publicKey);
  assert.deepEqual(Object.keys(jwk).sort(), ["crv", "kty", "x", "y"]);
});

const E2E = 'kid="K1d", enc=:BA==:';

test("a signature needs the Privchat-E2E header", async () => {
  const kp = await generateDeviceKey();
  await assert.rejects(signRequest({ privateKey: kp.privateKey, keyId: "k", method: "GET", url: "http://x/api/devices" }), /Privchat-E2E/);
});

test("signRequest output verifies against the signature base with WebCrypto", async () => {
  const kp = await generateDeviceKey();
  const jwk = await exportPublicJwk(kp.publicKey);
  const keyId = await jwkThumbprint(jwk);
  const body = JSON.stringify({ message: "hello", conversation_id: null });
  const now = 1700000123456;
  const headers = await signRequest({
    privateKey: kp.privateKey,
    keyId,
    method: "POST",
    url: "http://127.0.0.1:8765/api/chat",
    body,
    e2e: E2E,
    now,
  });
  assert.deepEqual(Object.keys(headers).sort(), ["Content-Digest", "Signature", "Signature-Input"]);
  assert.equal(headers["Content-Digest"], `sha-256=:${sha256b64(body)}:`);

  const m = /^sig1=(\(.*\);created=(\d+);nonce="([^"]+)";keyid="([^"]+)";alg="ecdsa-p256-sha256";tag="privchat")$/.exec(
    headers["Signature-Input"],
  );
  assert.ok(m, headers["Signature-Input"]);
  assert.equal(Number(m[2]), 1700000123);
  assert.equal(base64UrlToBytes(m[3]).length, 16);
  assert.equal(m[4], keyId);

  const sm = /^sig1=:([A-Za-z0-9+/=]+):$/.exec(headers.Signature);
  assert.ok(sm, headers.Signature);
  const sig = base64ToBytes(sm[1]);
  assert.equal(sig.length, 64);

  const base = signatureBase({
    method: "POST",
    path: "/api/chat",
    query: "?",
    contentDigest: headers["Content-Digest"],
    e2e: E2E,
    params: m[1],
  });
  assert.equal(await verifyBase(kp.publicKey, base, sig), true);
  // Another Privchat-E2E header (another enc, another key) must not verify.
  const swapped = signatureBase({ method: "POST", path: "/api/chat", query: "?", contentDigest: headers["Content-Digest"], e2e: 'kid="K2", enc=:BA==:', params: m[1] });
  assert.equal(await verifyBase(kp.publicKey, swapped, sig), false);
  // A changed body must not verify.
  const other = signatureBase({
    method: "POST",
    path: "/api/chat",
    query: "?",
    contentDigest: await contentDigest(body + " "),
    e2e: E2E,
    params: m[1],
  });
  assert.equal(await verifyBase(kp.publicKey, other, sig), false);
});

test("nonces differ between requests", async () => {
  const kp = await generateDeviceKey();
  const a = await signRequest({ privateKey: kp.privateKey, keyId: "k", method: "GET", url: "http://x/api/devices", e2e: E2E });
  const b = await signRequest({ privateKey: kp.privateKey, keyId: "k", method: "GET", url: "http://x/api/devices", e2e: E2E });
  assert.notEqual(a["Signature-Input"], b["Signature-Input"]);
});
