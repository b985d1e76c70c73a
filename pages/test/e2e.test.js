// The page's end-to-end layer (src/lib/e2e.js, docs/E2E.md): RFC 9180's known answers for the
// suite through @hpke/core, request and response round trips, and each broken rule's own error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as e2e from "../src/lib/e2e.js";
import { E2EError } from "../src/lib/errors.js";
import { bytesToBase64Url, jwkThumbprint, shortFingerprint } from "../src/lib/signing.js";
import { makeServerKey } from "./e2e-server.js";

const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b) => Buffer.from(new Uint8Array(b)).toString("hex");
const text = (b) => new TextDecoder().decode(b);
const V = JSON.parse(readFileSync(new URL("./vectors/rfc9180-a3-base.json", import.meta.url), "utf8"));

const isE2E = (code) => (err) => err instanceof E2EError && err.code === code;

// ---------------------------------------------------------------- RFC 9180 A.3.1

/** skRm as a P-256 JWK, with the public point from pkRm (WebCrypto needs both for a private JWK). */
function recipientJwk() {
  const pk = hex(V.pkRm);
  const b64u = (b) => Buffer.from(b).toString("base64url");
  return { kty: "EC", crv: "P-256", d: b64u(hex(V.skRm)), x: b64u(pk.subarray(1, 33)), y: b64u(pk.subarray(33, 65)) };
}

test("RFC 9180 A.3.1: the vector is the suite's (DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base)", () => {
  assert.deepEqual([V.mode, V.kem_id, V.kdf_id, V.aead_id], [0, 16, 1, 1]);
  assert.match(V.source, /RFC 9180 Appendix A\.3\.1/);
});

test("RFC 9180 A.3.1: with skR, enc and info, the recipient opens the published ciphertexts and reproduces the exports", async () => {
  const suite = e2e.cipherSuite();
  const skR = await suite.kem.importKey("jwk", recipientJwk(), false);
  const ctx = await suite.createRecipientContext({ recipientKey: skR, enc: hex(V.enc), info: hex(V.info) });
  // The recipient's sequence number only moves by opening: open 0, 1, 2 in order.
  const inOrder = V.encryptions.filter((e) => e.seq <= 2);
  assert.deepEqual(inOrder.map((e) => e.seq), [0, 1, 2]);
  for (const e of inOrder) {
    assert.equal(toHex(await ctx.open(hex(e.ct), hex(e.aad))), e.pt, `sequence ${e.seq}`);
  }
  for (const x of V.exports) {
    assert.equal(toHex(await ctx.export(hex(x.exporter_context), x.L)), x.exported_value, `export "${x.exporter_context}"`);
  }
});

test("RFC 9180 A.3.1: seq 4, 255 and 256 open after the recipient's counter got there", async () => {
  const suite = e2e.cipherSuite();
  const skR = await suite.kem.importKey("jwk", recipientJwk(), false);
  // A sender with the published ephemeral key (ikmE) makes the same enc; sealing moves its counter,
  // and the recipient opens each of those dummy messages to move along with it.
  const ekm = await suite.kem.deriveKeyPair(hex(V.ikmE));
  const pkR = await suite.kem.deserializePublicKey(hex(V.pkRm));
  const sender = await suite.createSenderContext({ recipientPublicKey: pkR, info: hex(V.info), ekm });
  assert.equal(toHex(sender.enc), V.enc);
  const recipient = await suite.createRecipientContext({ recipientKey: skR, enc: hex(V.enc), info: hex(V.info) });
  const want = new Map(V.encryptions.map((e) => [e.seq, e]));
  for (let seq = 0; seq <= 256; seq++) {
    const e = want.get(seq);
    if (e) {
      const ct = await sender.seal(hex(e.pt), hex(e.aad));
      assert.equal(toHex(ct), e.ct, `sealed sequence ${seq}`);
      assert.equal(toHex(await recipient.open(hex(e.ct), hex(e.aad))), e.pt, `opened sequence ${seq}`);
    } else {
      await recipient.open(await sender.seal(new Uint8Array(1), new Uint8Array(0)), new Uint8Array(0));
    }
  }
});

test("RFC 9180 A.3.1: a flipped bit in a published ciphertext does not open", async () => {
  const suite = e2e.cipherSuite();
  const skR = await suite.kem.importKey("jwk", recipientJwk(), false);
  const ctx = await suite.createRecipientContext({ recipientKey: skR, enc: hex(V.enc), info: hex(V.info) });
  const ct = hex(V.encryptions[0].ct);
  ct[3] ^= 0x80;
  await assert.rejects(ctx.open(ct, hex(V.encryptions[0].aad)));
});

// ---------------------------------------------------------------- keys and info

test("the server key's kid is its RFC 7638 thumbprint; the fingerprint is the device's short form", async () => {
  const server = await makeServerKey();
  assert.equal(server.pin.kid, await jwkThumbprint(server.pin.jwk));
  assert.equal(server.pin.fingerprint, shortFingerprint(server.pin.kid));
  assert.match(server.pin.fingerprint, /^[0-9A-F]{4}( [0-9A-F]{4}){3}$/);
  await assert.rejects(e2e.importServerKey(server.pin.jwk, "another-kid"), isE2E("e2e_key_mismatch"));
  await assert.rejects(e2e.importServerKey({ kty: "OKP", crv: "X25519", x: "AA" }), isE2E("e2e_key_mismatch"));
});

test("info is the label, method, target and device id joined by NUL bytes", () => {
  assert.equal(text(e2e.requestInfo("post", "/api/history?limit=50", "dev-1")), "privchat e2e v1 request\0POST\0/api/history?limit=50\0dev-1");
});

test("the Privchat-E2E header is an RFC 8941 dictionary with a 65-byte enc", async () => {
  const server = await makeServerKey();
  const r = await e2e.sealRequest({ serverKey: server.pin, method: "GET", target: "/api/devices", deviceId: "d" });
  assert.match(r.header, /^kid="[A-Za-z0-9_-]{43}", enc=:[A-Za-z0-9+/]{87}=:$/);
  const parsed = e2e.parseRequestHeader(r.header);
  assert.equal(parsed.kid, server.pin.kid);
  assert.equal(parsed.enc.length, 65);
  assert.equal(parsed.enc[0], 4); // an uncompressed P-256 point
  assert.equal(r.body, null);
});

// ---------------------------------------------------------------- round trips

async function exchange({ method = "POST", target = "/api/chat", deviceId = "dev", body = '{"message":"hi"}' } = {}) {
  const server = await makeServerKey();
  const sealed = await e2e.sealRequest({ serverKey: server.pin, method, target, deviceId, bodyBytes: body });
  const opened = await e2e.openRequest({ privateKey: server.privateKey, header: sealed.header, method, target, deviceId, body: sealed.body });
  return { server, sealed, opened };
}

test("a request body opens with the server key and the same method, target and device", async () => {
  const { sealed, opened } = await exchange();
  assert.equal(text(opened.plaintext), '{"message":"hi"}');
  assert.notEqual(text(sealed.body), '{"message":"hi"}');
  assert.equal(sealed.body.length, 16 + 16); // plaintext + tag
});

test("a request body does not open under another target, method, device or key, or with a flipped bit", async () => {
  const server = await makeServerKey();
  const other = await makeServerKey();
  const s = await e2e.sealRequest({ serverKey: server.pin, method: "POST", target: "/api/chat", deviceId: "dev", bodyBytes: "{}" });
  const open = (o) => e2e.openRequest({ privateKey: server.privateKey, header: s.header, method: "POST", target: "/api/chat", deviceId: "dev", body: s.body, ...o });
  await open({});
  await assert.rejects(open({ target: "/api/settings" }));
  await assert.rejects(open({ method: "PUT" }));
  await assert.rejects(open({ deviceId: "dev2" }));
  await assert.rejects(open({ privateKey: other.privateKey }));
  const flipped = new Uint8Array(s.body);
  flipped[0] ^= 1;
  await assert.rejects(open({ body: flipped }));
});

test("a one-chunk answer opens; a flipped bit, another nonce or another request's opener does not", async () => {
  const { sealed, opened } = await exchange();
  const answer = await opened.responder.seal('{"ok":true}');
  assert.equal(text(await sealed.opener.open(answer.nonce, answer.body)), '{"ok":true}');
  assert.match(answer.nonce, /^[A-Za-z0-9_-]{22}$/);
  const flipped = new Uint8Array(answer.body);
  flipped[flipped.length - 1] ^= 1;
  await assert.rejects(sealed.opener.open(answer.nonce, flipped), isE2E("e2e_response_invalid"));
  const again = await opened.responder.seal('{"ok":true}');
  assert.notEqual(again.nonce, answer.nonce);
  await assert.rejects(sealed.opener.open(again.nonce, answer.body), isE2E("e2e_response_invalid"));
  const other = await exchange();
  await assert.rejects(other.sealed.opener.open(answer.nonce, answer.body), isE2E("e2e_response_invalid"));
  await assert.rejects(sealed.opener.open(null, answer.body), isE2E("e2e_unsealed"));
  await assert.rejects(sealed.opener.open("c2hvcnQ", answer.body), isE2E("e2e_response_invalid"));
});

test("a one-chunk answer sealed as a non-final chunk does not open", async () => {
  const { sealed, opened } = await exchange();
  const { nonce, keys } = await opened.responder.start();
  const chunk = await e2e.sealChunk(keys, 0, "{}", false);
  await assert.rejects(sealed.opener.open(nonce, Buffer.from(chunk, "base64url")), isE2E("e2e_response_invalid"));
});

test("the response key derivation: HKDF-SHA256 over enc||nonce, info key and nonce, chunk nonce XOR i", async () => {
  const base = hex("000102030405060708090a0b");
  assert.equal(toHex(e2e.chunkNonce(base, 0)), "000102030405060708090a0b");
  assert.equal(toHex(e2e.chunkNonce(base, 1)), "000102030405060708090a0a");
  assert.equal(toHex(e2e.chunkNonce(base, 256)), "000102030405060708090b0b");
  // Cross-check against node's own HKDF.
  const { hkdfSync } = await import("node:crypto");
  const secret = hex("00112233445566778899aabbccddeeff");
  const enc = new Uint8Array(65).fill(4);
  const nonce = new Uint8Array(16).fill(7);
  const salt = Buffer.concat([enc, nonce]);
  const keys = await e2e.responseKeys(secret, enc, nonce);
  assert.equal(toHex(keys.nonceBase), toHex(hkdfSync("sha256", secret, salt, "nonce", 12)));
  const raw = hkdfSync("sha256", secret, salt, "key", 16);
  const aes = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: keys.nonceBase, additionalData: new TextEncoder().encode("final") }, aes, new TextEncoder().encode("x"));
  assert.equal(text(await e2e.openResponse({ secret, enc, nonce, ciphertext: new Uint8Array(ct) })), "x");
});

// ---------------------------------------------------------------- streams

async function streamOf(n = 3) {
  const { sealed, opened } = await exchange();
  const events = Array.from({ length: n }, (_, i) => JSON.stringify({ id: `r:${i}`, event: i === n - 1 ? "done" : "token", data: { i } }));
  const { nonce, chunks } = await opened.responder.sealStream(events);
  return { opener: await sealed.opener.stream(nonce), chunks, events, opened, sealed, nonce };
}

test("a stream opens chunk n with counter n; the last is final", async () => {
  const { opener, chunks, events } = await streamOf(4);
  for (let i = 0; i < chunks.length; i++) {
    const r = await opener.next(chunks[i]);
    assert.equal(text(r.plaintext), events[i]);
    assert.equal(r.final, i === chunks.length - 1);
    assert.equal(r.index, i);
  }
  opener.end();
});

test("a dropped chunk is e2e_event_invalid", async () => {
  const { opener, chunks } = await streamOf(3);
  await opener.next(chunks[0]);
  await assert.rejects(opener.next(chunks[2]), isE2E("e2e_event_invalid"));
});

test("reordered chunks are e2e_event_invalid", async () => {
  const { opener, chunks } = await streamOf(3);
  await assert.rejects(opener.next(chunks[1]), isE2E("e2e_event_invalid"));
});

test("a replayed chunk is e2e_event_invalid", async () => {
  const { opener, chunks } = await streamOf(3);
  await opener.next(chunks[0]);
  await assert.rejects(opener.next(chunks[0]), isE2E("e2e_event_invalid"));
});

test("a flipped bit in a chunk is e2e_event_invalid, and the stream stays failed", async () => {
  const { opener, chunks } = await streamOf(3);
  const bytes = Buffer.from(chunks[0], "base64url");
  bytes[5] ^= 0x10;
  await assert.rejects(opener.next(bytes.toString("base64url")), isE2E("e2e_event_invalid"));
  await assert.rejects(opener.next(chunks[0]), isE2E("e2e_event_invalid"));
  await assert.rejects(opener.next("not base64url!"), isE2E("e2e_event_invalid"));
});

test("a stream without its final chunk is e2e_truncated", async () => {
  const { opener, chunks } = await streamOf(3);
  await opener.next(chunks[0]);
  await opener.next(chunks[1]);
  assert.throws(() => opener.end(), isE2E("e2e_truncated"));
  const empty = (await streamOf(1)).opener;
  assert.throws(() => empty.end(), isE2E("e2e_truncated"));
});

test("anything after the final chunk is e2e_event_invalid", async () => {
  const { sealed, opened } = await exchange();
  const { nonce, keys } = await opened.responder.start();
  const opener = await sealed.opener.stream(nonce);
  await opener.next(await e2e.sealChunk(keys, 0, "{}", true));
  await assert.rejects(opener.next(await e2e.sealChunk(keys, 1, "{}", false)), isE2E("e2e_event_invalid"));
  await assert.rejects(opener.next(await e2e.sealChunk(keys, 1, "{}", true)), isE2E("e2e_event_invalid"));
});

test("a chunk from another stream of the same request (another nonce) does not open", async () => {
  const { opener, opened } = await streamOf(2);
  const other = await opened.responder.sealStream(["a", "b"]);
  await assert.rejects(opener.next(other.chunks[0]), isE2E("e2e_event_invalid"));
});

// ---------------------------------------------------------------- pairing

test("the pairing code is normalised: upper case, no dashes or spaces, O→0, I and L→1", () => {
  assert.equal(e2e.normaliseCode("abcd-efgh ijkl"), "ABCDEFGH1JK1");
  assert.equal(e2e.normaliseCode("o0-Il"), "0011");
});

test("pairing proof and key confirmation: HMAC-SHA256 keyed by the normalised code, labels as docs/E2E.md", async () => {
  const { createHmac } = await import("node:crypto");
  const mac = (label) => createHmac("sha256", "K7Q2M9X01").update(`${label}\0dev-id\0kid-1`).digest("base64url");
  assert.equal(await e2e.pairingProof("k7q2-m9xo-l", "dev-id", "kid-1"), mac("privchat pairing proof v1"));
  assert.equal(await e2e.keyConfirmation("K7Q2 M9X0 1", "dev-id", "kid-1"), mac("privchat pairing confirm v1"));
  assert.notEqual(await e2e.pairingProof("K7Q2M9X01", "dev-id", "kid-2"), mac("privchat pairing proof v1"));
  await e2e.checkKeyConfirmation(mac("privchat pairing confirm v1"), "K7Q2M9X01", "dev-id", "kid-1");
  await assert.rejects(e2e.checkKeyConfirmation(mac("privchat pairing confirm v1"), "K7Q2M9X01", "dev-id", "kid-2"), isE2E("e2e_key_mismatch"));
  await assert.rejects(e2e.checkKeyConfirmation(undefined, "K7Q2M9X01", "dev-id", "kid-1"), isE2E("e2e_key_mismatch"));
  await assert.rejects(e2e.checkKeyConfirmation(mac("privchat pairing proof v1"), "K7Q2M9X01", "dev-id", "kid-1"), isE2E("e2e_key_mismatch"));
});

test("bytesToBase64Url of the chunk matches what the stream carries", async () => {
  const { chunks } = await streamOf(1);
  assert.equal(bytesToBase64Url(Buffer.from(chunks[0], "base64url")), chunks[0]);
});
