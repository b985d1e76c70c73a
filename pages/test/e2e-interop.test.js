// test/e2e-interop.mjs, the command the backend's tests call: its JSON interface, both directions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cipherSuite } from "../src/lib/e2e.js";

const SCRIPT = fileURLToPath(new URL("./e2e-interop.mjs", import.meta.url));
const run = (cmd, input) => JSON.parse(execFileSync(process.execPath, [SCRIPT, cmd], { input: JSON.stringify(input) }).toString());
const b64 = (s) => Buffer.from(s).toString("base64");
const META = { status: 200, kid: "interop", headers: {} };
const META_LINE = JSON.stringify(META) + "\n";

test("seal -> open-request -> seal-response -> open, one chunk and a stream of frames, and batch mode", async () => {
  const kp = await cipherSuite().kem.generateKeyPair();
  const priv = await crypto.subtle.exportKey("jwk", kp.privateKey);
  const pub = { kty: "EC", crv: "P-256", x: priv.x, y: priv.y };
  const sealed = run("seal", { server_jwk: pub, method: "post", target: "/api/chat", body: '{"message":"MARKER"}', sign: true });
  assert.equal(sealed.headers["Privchat-E2E"], sealed.header);
  assert.match(sealed.header, /^v=2, kid="/);
  assert.equal(Buffer.from(sealed.body_b64, "base64").length, 1024); // padded
  assert.match(sealed.headers["Signature-Input"], /"privchat-e2e"/);
  assert.ok(!Buffer.from(sealed.body_b64, "base64").toString("latin1").includes("MARKER"));
  const opened = run("open-request", { server_private_jwk: priv, header: sealed.header, method: "POST", target: "/api/chat", device_id: sealed.device_id, body_b64: sealed.body_b64 });
  assert.equal(Buffer.from(opened.plaintext_b64, "base64").toString(), '{"message":"MARKER"}');
  assert.equal(opened.secret_b64, sealed.secret_b64);
  // body_b64 is the whole content: the caller puts the meta line in front.
  const one = run("seal-response", { secret_b64: opened.secret_b64, enc_b64: opened.enc_b64, body_b64: b64(META_LINE + '{"ok":1}') });
  assert.equal(Buffer.from(one.body_b64, "base64").length, 1024); // padded
  const back = run("open", { secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: one.nonce, body_b64: one.body_b64 });
  assert.equal(back.text, '{"ok":1}');
  assert.equal(Buffer.from(back.plaintext_b64, "base64").toString(), '{"ok":1}');
  assert.deepEqual(back.meta, META);
  // Without a meta line the answer is not read.
  const bare = run("seal-response", { secret_b64: opened.secret_b64, enc_b64: opened.enc_b64, body_b64: b64('{"ok":1}') });
  assert.equal(run("open", { items: [{ secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: bare.nonce, body_b64: bare.body_b64 }] }).results[0].error, "e2e_response_invalid");
  // A stream: two events cut across three frames (the second one inside "é"), the last one final.
  const lines = ['{"id":"a:0","event":"token","data":{"text":"é"}}', '{"id":"a:1","event":"done","data":{}}'];
  const bytes = Buffer.from(META_LINE + lines.join("\n") + "\n");
  const at = bytes.indexOf(Buffer.from("é")) + 1;
  const parts = [bytes.subarray(0, at), Buffer.alloc(0), bytes.subarray(at)];
  const st = run("seal-response", { secret_b64: opened.secret_b64, enc_b64: opened.enc_b64, frames_b64: [[parts[0].toString("base64"), 1024], [parts[1].toString("base64"), 4096], [parts[2].toString("base64"), 1024]] });
  assert.deepEqual(st.frames.map((f) => Buffer.from(f, "base64url").length), [1024, 4096, 1024]);
  const stream = { secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: st.nonce };
  assert.deepEqual(run("open", { ...stream, frames: st.frames }), { events: lines, final: true, meta: META });
  const batch = run("open", { items: [
    { ...stream, frames: st.frames.slice(0, 2) },
    { ...stream, frames: [st.frames[0], st.frames[2]] },
    { ...stream, frames: [...st.frames, st.frames[2]] },
  ] });
  assert.deepEqual(batch.results.map((r) => r.error), ["e2e_truncated", "e2e_event_invalid", "e2e_event_invalid"]);
  const tooBig = run("seal-response", { items: [{ secret_b64: opened.secret_b64, enc_b64: opened.enc_b64, frames_b64: [[b64("x".repeat(1007)), 1024]] }] });
  assert.equal(tooBig.results[0].error, "failed");
  const bad = spawnSync(process.execPath, [SCRIPT, "open"], { input: JSON.stringify({ secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: one.nonce, body_b64: b64("xxxxxxxxxxxxxxxxxxxx") }) });
  assert.equal(bad.status, 1);
  assert.equal(JSON.parse(bad.stdout.toString()).error, "e2e_response_invalid");
  const p = run("pairing", { code: "ab-cd", device_id: "d", kid: "k" });
  assert.equal(p.normalised, "ABCD");
});

test("pake-client and pake-macs: a typed code's login against the OPAQUE server half, and its MACs", async () => {
  const { pakeServer } = await import("./e2e-server.js");
  const { createHmac } = await import("node:crypto");
  const pake = await pakeServer({ code: "K7Q2-M9X0" });
  const jwk = { kty: "EC", crv: "P-256", x: "x", y: "y" };
  const { jwkThumbprint } = await import("../src/lib/signing.js");
  const deviceId = await jwkThumbprint(jwk);
  const step = async (code, server = pake) => {
    const one = run("pake-client", { code });
    assert.match(one.request, /^[A-Za-z0-9_-]+$/);
    const answer = await server.start({ json: { request: one.request, public_key: jwk }, deviceId, kid: "k" });
    return { one, answer };
  };
  const { one, answer } = await step("k7q2 m9xo");
  assert.equal(one.normalised, "K7Q2M9X0");
  const two = run("pake-client", { code: "k7q2 m9xo", state: one.state, response: answer.json.response });
  assert.match(two.finalization, /^[A-Za-z0-9_-]+$/);
  assert.equal(Buffer.from(two.session_key, "base64url").length, 64);
  const macs = run("pake-macs", { session_key: two.session_key, device_id: deviceId, kid: "k" });
  const mac = (label) => createHmac("sha256", Buffer.from(two.session_key, "base64url")).update(`${label}\0${deviceId}\0k`).digest("base64url");
  assert.deepEqual(macs, { device_proof: mac("privchat pairing device v2"), key_confirmation: mac("privchat pairing confirm v2") });
  // The server finishes the same login and takes the proof.
  const done = await pake.finish({ json: { pairing_id: answer.json.pairing_id, finalization: two.finalization, device_proof: macs.device_proof, public_key: jwk, name: "n" }, deviceId, kid: "k" });
  assert.equal(done.status, 201);
  assert.equal(done.json.key_confirmation, macs.key_confirmation);
  // A wrong code (against a code still open): pairing_invalid, exit 1; in a batch, in its place.
  const wrong = await step("K7Q2-M9X1", await pakeServer({ code: "K7Q2-M9X0" }));
  const input = { code: "K7Q2-M9X1", state: wrong.one.state, response: wrong.answer.json.response };
  const refused = spawnSync(process.execPath, [SCRIPT, "pake-client"], { input: JSON.stringify(input) });
  assert.equal(refused.status, 1);
  assert.equal(JSON.parse(refused.stdout.toString()).error, "pairing_invalid", refused.stdout.toString());
  assert.deepEqual(run("pake-client", { items: [input] }).results.map((r) => r.error), ["pairing_invalid"]);
});
