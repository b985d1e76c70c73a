// The page's end-to-end layer (src/lib/e2e.js, docs/E2E.md, version 2): RFC 9180's known answers
// for the suite through @hpke/core, request and response round trips, padding to size classes,
// reply streams as sealed frames, and each broken rule's own error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as e2e from "../src/lib/e2e.js";
import { E2EError } from "../src/lib/errors.js";
import { bytesToBase64Url, jwkThumbprint, shortFingerprint } from "../src/lib/signing.js";
import { TEST_META, eventBytes, makeServerKey, packFrames } from "./e2e-server.js";

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
  assert.equal(text(e2e.requestInfo("post", "/api/history?limit=50", "dev-1")), "privchat e2e v2 request\0POST\0/api/history?limit=50\0dev-1");
});

test("the Privchat-E2E header is an RFC 8941 dictionary v=2, kid, and a 65-byte enc", async () => {
  const server = await makeServerKey();
  const r = await e2e.sealRequest({ serverKey: server.pin, method: "GET", target: "/api/devices", deviceId: "d" });
  assert.match(r.header, /^v=2, kid="[A-Za-z0-9_-]{43}", enc=:[A-Za-z0-9+/]{87}=:$/);
  const parsed = e2e.parseRequestHeader(r.header);
  assert.equal(parsed.kid, server.pin.kid);
  assert.equal(parsed.enc.length, 65);
  assert.equal(parsed.enc[0], 4); // an uncompressed P-256 point
  assert.equal(r.body, null);
});

test("the header's three members are read in any order; anything else is refused", async () => {
  const server = await makeServerKey();
  const { header } = await e2e.sealRequest({ serverKey: server.pin, method: "GET", target: "/api/devices", deviceId: "d" });
  const [v, kid, enc] = header.split(", ");
  for (const order of [[v, kid, enc], [kid, enc, v], [enc, v, kid], [kid, v, enc]]) {
    const parsed = e2e.parseRequestHeader(order.join(","));
    assert.equal(parsed && parsed.kid, server.pin.kid, order.join(","));
  }
  for (const bad of [
    `${kid}, ${enc}`, // version 1: no v
    `v=1, ${kid}, ${enc}`,
    `v=3, ${kid}, ${enc}`,
    `v="2", ${kid}, ${enc}`,
    `${v}, ${v}, ${kid}, ${enc}`,
    `${v}, ${kid}, ${enc}, x=1`,
    `${v}, ${kid}`,
    `${v}, ${kid}, enc=:${Buffer.alloc(64, 4).toString("base64")}:`,
    `${v}, kid=${kid.slice(5, -1)}, ${enc}`,
    `${v}; ${kid}; ${enc}`,
    "",
  ]) {
    assert.equal(e2e.parseRequestHeader(bad), null, bad);
  }
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
  assert.equal(sealed.body.length, 1024); // padded to the smallest class
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
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: keys.nonceBase, additionalData: new TextEncoder().encode("final") }, aes, e2e.padBody("x"));
  assert.equal(text(await e2e.openResponse({ secret, enc, nonce, ciphertext: new Uint8Array(ct) })), "x");
});

// ---------------------------------------------------------------- padding

const MIB = 1048576;

test("size classes: 1024 up to len(M) = 1004, then each power of two, then whole MiB above 1 MiB", () => {
  assert.equal(e2e.sizeClass(0), 1024);
  assert.equal(e2e.sizeClass(1004), 1024);
  assert.equal(e2e.sizeClass(1005), 2048);
  for (let size = 1024; size <= MIB; size *= 2) {
    assert.equal(e2e.sizeClass(size - 20), size, `${size - 20} bytes fill ${size}`);
    assert.equal(e2e.sizeClass(size - 19), size === MIB ? 2 * MIB : size * 2, `${size - 19} bytes go past ${size}`);
  }
  assert.equal(e2e.sizeClass(2 * MIB - 20), 2 * MIB);
  assert.equal(e2e.sizeClass(2 * MIB - 19), 3 * MIB);
  assert.equal(e2e.sizeClass(5 * MIB), 6 * MIB);
});

test("pad and unpad round trip at every class boundary; the padded body is the class less the tag", () => {
  const lengths = [0, 1, 1004, 1005, 2028, 2029, 4076, 4077, MIB - 20, MIB - 19, 2 * MIB - 20, 2 * MIB - 19];
  for (const n of lengths) {
    const m = new Uint8Array(n).map((_, i) => (i * 7 + 1) & 0xff);
    const padded = e2e.padBody(m);
    const size = e2e.sizeClass(n);
    assert.equal(padded.length, size - 16, `${n} bytes`);
    assert.deepEqual([...padded.subarray(0, 4)], [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
    assert.ok(padded.subarray(4 + n).every((b) => b === 0));
    assert.ok(Buffer.from(e2e.unpadBody(padded, size)).equals(Buffer.from(m)), `${n} bytes back`);
  }
  assert.equal(text(e2e.unpadBody(e2e.padBody('{"a":"é"}'), 1024)), '{"a":"é"}');
});

/** A padded body by hand: the length prefix `len`, the content, then `total - 4 - content` bytes of `fill`. */
function handPadded(content, total, { len = content.length, fill = 0 } = {}) {
  const out = new Uint8Array(total).fill(fill);
  new DataView(out.buffer).setUint32(0, len);
  out.set(content, 4);
  return out;
}

test("unpad refuses a nonzero padding byte, a length that does not fit, and a body padded past its class", () => {
  const m = new TextEncoder().encode('{"x":1}');
  const refuses = (bytes, sealedLength, code = "e2e_response_invalid") => assert.throws(() => e2e.unpadBody(bytes, sealedLength, code), isE2E(code));
  const good = e2e.padBody(m);
  const dirty = new Uint8Array(good);
  dirty[dirty.length - 1] = 1;
  refuses(dirty, 1024);
  const dirtyNext = new Uint8Array(good);
  dirtyNext[4 + m.length] = 0x80; // the first padding byte
  refuses(dirtyNext, 1024);
  refuses(handPadded(m, 1008, { len: 1005 }), 1024); // 4 + 1005 > 1008
  refuses(handPadded(m, 1008, { len: 0xffffffff }), 1024);
  refuses(handPadded(m, 2032), 2048); // 7 bytes padded to 2048: its class is 1024
  assert.equal(e2e.unpadBody(handPadded(new Uint8Array(1004), 1008), 1024).length, 1004);
  refuses(handPadded(new Uint8Array(1005), 2032, { len: 10 }), 2048); // the length says 10: class 1024, not 2048
  refuses(dirty, 1024, "e2e_open_failed"); // the code is the caller's
  refuses(good, 2048); // the sealed length is not the padded body's
  refuses(good.subarray(0, 3), 19);
  refuses(handPadded(m, 1500), 1516); // not a class at all
});

test("a sealed request body is its size class long; one padded too much or with a dirty pad is e2e_open_failed", async () => {
  const server = await makeServerKey();
  for (const [n, size] of [[0, 1024], [1004, 1024], [1005, 2048], [3000, 4096]]) {
    const body = "x".repeat(n);
    const s = await e2e.sealRequest({ serverKey: server.pin, method: "POST", target: "/api/chat", deviceId: "dev", bodyBytes: body });
    assert.equal(s.body.length, size, `${n} bytes`);
    const o = await e2e.openRequest({ privateKey: server.privateKey, header: s.header, method: "POST", target: "/api/chat", deviceId: "dev", body: s.body });
    assert.equal(text(o.plaintext), body);
  }
  // A sender that pads by its own rules: the seal opens, the padding is refused.
  const m = new TextEncoder().encode("{}");
  for (const padded of [handPadded(m, 2032), handPadded(m, 1008).map((b, i) => (i === 1000 ? 9 : b))]) {
    const ctx = await e2e.cipherSuite().createSenderContext({ recipientPublicKey: (await e2e.importServerKey(server.pin.jwk)).publicKey, info: e2e.requestInfo("POST", "/api/chat", "dev") });
    const body = new Uint8Array(await ctx.seal(padded, new Uint8Array(0)));
    const header = e2e.requestHeader(server.pin.kid, new Uint8Array(ctx.enc));
    await assert.rejects(e2e.openRequest({ privateKey: server.privateKey, header, method: "POST", target: "/api/chat", deviceId: "dev", body }), isE2E("e2e_open_failed"));
  }
});

test("a sealed answer is padded to its class; one padded past its class or with a dirty pad is e2e_response_invalid", async () => {
  const { sealed, opened } = await exchange();
  const big = JSON.stringify({ text: "y".repeat(5000) });
  const answer = await opened.responder.seal(big);
  assert.equal(answer.body.length, 8192);
  assert.equal(text(await sealed.opener.open(answer.nonce, answer.body)), big);
  const m = new TextEncoder().encode('{"ok":true}');
  const dirty = handPadded(m, 1008);
  dirty[1007] = 1;
  for (const padded of [handPadded(m, 2032), handPadded(m, 4080), dirty, handPadded(m, 1008, { len: 2000 })]) {
    const { nonce, keys } = await opened.responder.start();
    const body = Buffer.from(await e2e.sealChunk(keys, 0, padded, true), "base64url");
    await assert.rejects(sealed.opener.open(nonce, body), isE2E("e2e_response_invalid"));
  }
});

// ---------------------------------------------------------------- streams: frames

const START = { id: "r:0", event: "start", data: { assistant_message_id: "r" } };
const token = (i, t) => ({ id: `r:${i}`, event: "token", data: { text: t } });
const DONE = { id: "r:9", event: "done", data: { finish_reason: "stop" } };
const empty = (size = 1024) => ({ payload: new Uint8Array(0), size });
const bytesOf = (s) => new TextEncoder().encode(s);
const META = `${JSON.stringify(TEST_META)}\n`; // a stream's first line

/** A stream of these frames [{payload, size}] sealed to a fresh request: its opener and sealed frames. */
async function streamOf(frames) {
  const { sealed, opened } = await exchange();
  const { nonce, chunks } = await opened.responder.sealFrames(frames);
  return { opener: await sealed.opener.stream(nonce), chunks, opened, sealed, nonce };
}

/** Opens every frame and reads its events: the events' lines; throws what the page would. */
async function readAll(opener, chunks) {
  const reader = new e2e.FrameEventReader();
  const lines = [];
  for (const c of chunks) {
    const { payload, final } = await opener.next(c);
    for (const ev of reader.push(payload, final)) lines.push(ev.line);
  }
  opener.end();
  reader.end();
  return lines;
}

const linesOf = (events) => events.map((e) => JSON.stringify(e));

test("a frame is I2OSP(k, 2), the payload and zeros, sealed to exactly 1024, 4096 or 16384 bytes", async () => {
  assert.deepEqual(e2e.FRAME_SIZES, [1024, 4096, 16384]);
  const pt = e2e.framePlaintext(bytesOf("abc"), 1024);
  assert.equal(pt.length, 1008);
  assert.deepEqual([...pt.subarray(0, 5)], [0, 3, 97, 98, 99]);
  assert.ok(pt.subarray(5).every((b) => b === 0));
  assert.throws(() => e2e.framePlaintext(new Uint8Array(1007), 1024), RangeError);
  assert.throws(() => e2e.framePlaintext(new Uint8Array(1), 2048), RangeError);
  const { chunks } = await streamOf([empty(1024), empty(4096), { payload: eventBytes([DONE]), size: 16384 }]);
  assert.deepEqual(chunks.map((c) => Buffer.from(c, "base64url").length), [1024, 4096, 16384]);
  assert.deepEqual(chunks.map((c) => c.length), [1366, 5462, 21846]);
});

test("a whole reply in one final frame", async () => {
  const events = [START, token(1, "hi"), DONE];
  const { opener, chunks } = await streamOf([{ payload: eventBytes(events), size: 1024 }]);
  const r = await opener.next(chunks[0]);
  assert.equal(r.final, true);
  assert.equal(r.index, 0);
  assert.equal(text(r.payload), [JSON.stringify(TEST_META), ...linesOf(events)].join("\n") + "\n");
  const reader = new e2e.FrameEventReader();
  const got = reader.push(r.payload, r.final);
  assert.deepEqual(got.map((e) => [e.id, e.event, e.data]), events.map((e) => [e.id, e.event, e.data]));
  assert.deepEqual(reader.meta, TEST_META); // the first line: the meta line, not an event
  opener.end();
  reader.end();
});

test("events split across frames anywhere, inside a multibyte UTF-8 character too, come back whole", async () => {
  const events = [START, token(1, "é✓"), token(2, "😀 ok"), DONE];
  const all = eventBytes(events);
  const emoji = Buffer.from(all).indexOf(Buffer.from("😀"));
  assert.ok(emoji > 0);
  for (let cut = 1; cut < all.length; cut++) {
    const { opener, chunks } = await streamOf([{ payload: all.slice(0, cut), size: 1024 }, { payload: all.slice(cut), size: 1024 }]);
    assert.deepEqual(await readAll(opener, chunks), linesOf(events), `cut at ${cut}${cut > emoji && cut < emoji + 4 ? " (inside 😀)" : ""}`);
  }
  // One byte a frame: every character split as finely as it can be.
  const frames = [...all].map((b) => ({ payload: Uint8Array.of(b), size: 1024 }));
  const { opener, chunks } = await streamOf(frames);
  assert.deepEqual(await readAll(opener, chunks), linesOf(events));
});

test("empty frames (queued, loading, thinking) carry nothing and are read past", async () => {
  const events = [START, token(1, "a"), DONE];
  const [m, a, b, c] = [JSON.stringify(TEST_META), ...linesOf(events)].map((l) => bytesOf(l + "\n"));
  const { opener, chunks } = await streamOf([empty(), { payload: m, size: 1024 }, { payload: a, size: 1024 }, empty(), empty(4096), { payload: b, size: 1024 }, empty(), { payload: c, size: 1024 }]);
  const reader = new e2e.FrameEventReader();
  const per = [];
  for (const ch of chunks) {
    const { payload, final } = await opener.next(ch);
    per.push(reader.push(payload, final).map((e) => e.event));
  }
  assert.deepEqual(per, [[], [], ["start"], [], [], ["token"], [], ["done"]]);
  reader.end();
});

test("a frame full of payload (F - 18 bytes) in each size", async () => {
  for (const size of e2e.FRAME_SIZES) {
    const head = JSON.stringify(token(1, ""));
    const fill = "z".repeat(size - 18 - head.length - 1);
    const full = bytesOf(JSON.stringify(token(1, fill)) + "\n");
    assert.equal(full.length, size - 18);
    const { opener, chunks } = await streamOf([{ payload: e2e.metaLine(TEST_META), size: 1024 }, { payload: full, size }, { payload: eventBytes([DONE], null), size: 1024 }]);
    assert.equal(Buffer.from(chunks[1], "base64url").length, size);
    const reader = new e2e.FrameEventReader();
    const first = await opener.next(chunks[0]);
    assert.deepEqual(reader.push(first.payload, first.final), []);
    const r = await opener.next(chunks[1]);
    assert.equal(r.payload.length, size - 18);
    assert.equal(reader.push(r.payload, r.final)[0].data.text, fill);
    const last = await opener.next(chunks[2]);
    assert.deepEqual(reader.push(last.payload, last.final).map((e) => e.event), ["done"]);
  }
});

test("the clock's cut (test/e2e-server.js packFrames): the smallest size that holds what waits", () => {
  const bytes = new Uint8Array(20000);
  assert.deepEqual(packFrames(bytes.subarray(0, 1006)).map((f) => f.size), [1024]);
  assert.deepEqual(packFrames(bytes.subarray(0, 1007)).map((f) => f.size), [4096]);
  assert.deepEqual(packFrames(bytes.subarray(0, 4079)).map((f) => f.size), [16384]);
  assert.deepEqual(packFrames(bytes).map((f) => [f.size, f.payload.length]), [[16384, 16366], [4096, 3634]]);
  assert.deepEqual(packFrames(bytes.subarray(0, 30), { perTick: 10, emptyFirst: 2 }).map((f) => f.payload.length), [0, 0, 10, 10, 10]);
});

test("an error event ends a stream as done does", async () => {
  const events = [START, { id: "r:1", event: "error", data: { code: "model_failed", message: "boom" } }];
  const { opener, chunks } = await streamOf(packFrames(eventBytes(events), { perTick: 30 }));
  assert.ok(chunks.length > 1);
  assert.deepEqual(await readAll(opener, chunks), linesOf(events));
});

const twoFrames = () => {
  const all = eventBytes([START, token(1, "one"), token(2, "two"), DONE]);
  return packFrames(all, { perTick: 40 });
};

test("a dropped frame is e2e_event_invalid", async () => {
  const { opener, chunks } = await streamOf(twoFrames());
  await opener.next(chunks[0]);
  await assert.rejects(opener.next(chunks[2]), isE2E("e2e_event_invalid"));
});

test("reordered frames are e2e_event_invalid", async () => {
  const { opener, chunks } = await streamOf(twoFrames());
  await assert.rejects(opener.next(chunks[1]), isE2E("e2e_event_invalid"));
});

test("a replayed frame is e2e_event_invalid", async () => {
  const { opener, chunks } = await streamOf(twoFrames());
  await opener.next(chunks[0]);
  await assert.rejects(opener.next(chunks[0]), isE2E("e2e_event_invalid"));
});

test("a flipped bit in a frame is e2e_event_invalid, and the stream stays failed", async () => {
  const { opener, chunks } = await streamOf(twoFrames());
  const bytes = Buffer.from(chunks[0], "base64url");
  bytes[5] ^= 0x10;
  await assert.rejects(opener.next(bytes.toString("base64url")), isE2E("e2e_event_invalid"));
  await assert.rejects(opener.next(chunks[0]), isE2E("e2e_event_invalid"));
  await assert.rejects(opener.next("not base64url!"), isE2E("e2e_event_invalid"));
});

test("a frame of a size not in the set is e2e_event_invalid, even when it opens", async () => {
  for (const size of [2048, 1023, 1025, 16, 32768]) {
    const { sealed, opened } = await exchange();
    const { nonce, keys } = await opened.responder.start();
    const opener = await sealed.opener.stream(nonce);
    const pt = new Uint8Array(size - 16); // k = 0, all zero: well formed but for its size
    await assert.rejects(opener.next(await e2e.sealChunk(keys, 0, pt, true)), isE2E("e2e_event_invalid"), `${size} bytes`);
  }
});

test("bad frame padding (a nonzero byte, or a length k that does not fit) is e2e_event_invalid", async () => {
  const line = eventBytes([DONE]);
  const dirty = e2e.framePlaintext(line, 1024);
  dirty[1007] = 1;
  const dirtyFirst = e2e.framePlaintext(line, 1024);
  dirtyFirst[2 + line.length] = 0x20;
  const tooLong = e2e.framePlaintext(line, 1024);
  tooLong[0] = 1007 >> 8;
  tooLong[1] = 1007 & 0xff; // 2 + 1007 > 1024 - 16
  const justFits = new Uint8Array(1008);
  justFits[0] = 1006 >> 8;
  justFits[1] = 1006 & 0xff;
  for (const [pt, ok] of [[dirty, false], [dirtyFirst, false], [tooLong, false], [justFits, true]]) {
    const { sealed, opened } = await exchange();
    const { nonce, keys } = await opened.responder.start();
    const opener = await sealed.opener.stream(nonce);
    const next = opener.next(await e2e.sealChunk(keys, 0, pt, true));
    if (ok) assert.equal((await next).payload.length, 1006);
    else await assert.rejects(next, isE2E("e2e_event_invalid"));
  }
});

test("a done in a frame not sealed final is e2e_event_invalid", async () => {
  const { opener, chunks } = await streamOf([{ payload: eventBytes([START, DONE]), size: 1024 }, empty()]);
  const reader = new e2e.FrameEventReader();
  const r = await opener.next(chunks[0]);
  assert.equal(r.final, false);
  assert.throws(() => reader.push(r.payload, r.final), isE2E("e2e_event_invalid"));
  assert.throws(() => reader.push(new Uint8Array(0), true), isE2E("e2e_event_invalid")); // failed for good
});

test("bytes after the done event in the final frame are e2e_event_invalid", async () => {
  for (const tail of ["{", "\n", JSON.stringify(token(10, "late")) + "\n"]) {
    const { opener, chunks } = await streamOf([{ payload: bytesOf(META + linesOf([START, DONE]).join("\n") + "\n" + tail), size: 1024 }]);
    await assert.rejects(readAll(opener, chunks), isE2E("e2e_event_invalid"), JSON.stringify(tail));
  }
});

test("a final frame that does not end with a done or error event's line feed is e2e_event_invalid", async () => {
  const cases = [
    [{ payload: eventBytes([START, token(1, "a")]), size: 1024 }], // no done at all
    [{ payload: bytesOf(META + linesOf([START, DONE]).join("\n")), size: 1024 }], // done without its line feed
    [{ payload: eventBytes([START]), size: 1024 }, empty()], // an empty final frame
    [{ payload: eventBytes([START]), size: 1024 }, { payload: bytesOf(JSON.stringify(DONE).slice(0, 10)), size: 1024 }], // cut inside done
    [{ payload: eventBytes([START, DONE], null), size: 1024 }], // no meta line: the first event is taken for it
  ];
  for (const frames of cases) {
    const { opener, chunks } = await streamOf(frames);
    await assert.rejects(readAll(opener, chunks), isE2E("e2e_event_invalid"));
  }
});

test("an event that is not JSON, or not an {event} object, is e2e_event_invalid", async () => {
  for (const line of ["not json", "", "[1,2]", '{"id":"r:1"}', '"token"', "\u00ff"]) {
    const { opener, chunks } = await streamOf([{ payload: bytesOf(`${META}${JSON.stringify(START)}\n${line}\n${JSON.stringify(DONE)}\n`), size: 1024 }]);
    await assert.rejects(readAll(opener, chunks), isE2E("e2e_event_invalid"), JSON.stringify(line));
  }
  // Bytes that are not UTF-8 (a lone continuation byte) are not an event either.
  const bad = new Uint8Array([...bytesOf(META + '{"id":null,"event":"token","data":{"text":"'), 0x80, ...bytesOf('"}}\n'), ...eventBytes([DONE], null)]);
  const { opener, chunks } = await streamOf([{ payload: bad, size: 1024 }]);
  await assert.rejects(readAll(opener, chunks), isE2E("e2e_event_invalid"));
});

test("a stream cut before its final frame is e2e_truncated", async () => {
  const { opener, chunks } = await streamOf(twoFrames());
  assert.ok(chunks.length >= 3);
  await assert.rejects(readAll(opener, chunks.slice(0, -1)), isE2E("e2e_truncated"));
  const nothing = await streamOf([{ payload: eventBytes([DONE]), size: 1024 }]);
  assert.throws(() => nothing.opener.end(), isE2E("e2e_truncated"));
  assert.throws(() => new e2e.FrameEventReader().end(), isE2E("e2e_truncated"));
  const reader = new e2e.FrameEventReader();
  reader.push(eventBytes([START]), false);
  assert.throws(() => reader.end(), isE2E("e2e_truncated"));
});

test("anything after the final frame is e2e_event_invalid", async () => {
  const { sealed, opened } = await exchange();
  const { nonce, keys } = await opened.responder.start();
  const opener = await sealed.opener.stream(nonce);
  const done = e2e.framePlaintext(eventBytes([DONE]), 1024);
  await opener.next(await e2e.sealChunk(keys, 0, done, true));
  await assert.rejects(opener.next(await e2e.sealChunk(keys, 1, e2e.framePlaintext(new Uint8Array(0), 1024), false)), isE2E("e2e_event_invalid"));
  await assert.rejects(opener.next(await e2e.sealChunk(keys, 1, done, true)), isE2E("e2e_event_invalid"));
  const reader = new e2e.FrameEventReader();
  reader.push(eventBytes([DONE]), true);
  assert.throws(() => reader.push(new Uint8Array(0), false), isE2E("e2e_event_invalid"));
});

test("a frame from another stream of the same request (another nonce) does not open", async () => {
  const { opener, opened } = await streamOf(twoFrames());
  const other = await opened.responder.sealFrames(twoFrames());
  await assert.rejects(opener.next(other.chunks[0]), isE2E("e2e_event_invalid"));
});

// ---------------------------------------------------------------- the meta line

test("the meta line: exactly {status, kid, headers}, only retry-after and content-disposition, then a line feed", () => {
  const ok = { status: 429, kid: "abc_-9", headers: { "retry-after": "3", "content-disposition": "attachment" } };
  assert.deepEqual(e2e.parseMeta(bytesOf(JSON.stringify(ok))), ok);
  const { meta, body } = e2e.splitMeta(new Uint8Array([...e2e.metaLine(ok), ...bytesOf('{"a":"\n"}')]));
  assert.deepEqual(meta, ok);
  assert.equal(text(body), '{"a":"\n"}'); // the first line feed ends META; the body may hold more
  assert.equal(text(e2e.splitMeta(e2e.metaLine({ kid: "k" })).body), "");
  for (const bad of ["", "nope", "[]", "null", '{"status":200,"kid":"k"}', '{"status":200,"kid":"k","headers":{},"x":1}',
    '{"status":99,"kid":"k","headers":{}}', '{"status":200.5,"kid":"k","headers":{}}', '{"status":200,"kid":"","headers":{}}',
    '{"status":200,"kid":"a b","headers":{}}', '{"status":200,"kid":"k","headers":[]}', '{"status":200,"kid":"k","headers":{"Retry-After":"1"}}',
    '{"status":200,"kid":"k","headers":{"retry-after":1}}', '{"status":200,"kid":"k","headers":{"location":"/"}}']) {
    assert.throws(() => e2e.parseMeta(bytesOf(bad)), isE2E("e2e_response_invalid"), bad);
    assert.throws(() => e2e.parseMeta(bytesOf(bad), "e2e_event_invalid"), isE2E("e2e_event_invalid"), bad);
  }
  assert.throws(() => e2e.splitMeta(bytesOf(JSON.stringify(ok))), isE2E("e2e_response_invalid"), "no line feed");
});

test("a stream's meta line may be cut across frames like any line; it is never an event", () => {
  const all = eventBytes([START, DONE]);
  for (const cut of [1, 10, META.length - 1, META.length]) {
    const reader = new e2e.FrameEventReader();
    assert.deepEqual(reader.push(all.slice(0, cut), false), []);
    assert.equal(reader.meta === null, cut < META.length, "read once its line feed came");
    assert.deepEqual(reader.push(all.slice(cut), true).map((e) => e.event), ["start", "done"]);
    assert.deepEqual(reader.meta, TEST_META);
  }
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

test("bytesToBase64Url of a frame matches what the stream carries", async () => {
  const { chunks } = await streamOf([{ payload: eventBytes([DONE]), size: 1024 }]);
  assert.equal(bytesToBase64Url(Buffer.from(chunks[0], "base64url")), chunks[0]);
});
