// test/e2e-interop.mjs, the command the backend's tests call: its JSON interface, both directions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cipherSuite } from "../src/lib/e2e.js";

const SCRIPT = fileURLToPath(new URL("./e2e-interop.mjs", import.meta.url));
const run = (cmd, input) => JSON.parse(execFileSync(process.execPath, [SCRIPT, cmd], { input: JSON.stringify(input) }).toString());
const b64 = (s) => Buffer.from(s).toString("base64");

test("seal -> open-request -> seal-response -> open, one chunk and a stream, and batch mode", async () => {
  const kp = await cipherSuite().kem.generateKeyPair();
  const priv = await crypto.subtle.exportKey("jwk", kp.privateKey);
  const pub = { kty: "EC", crv: "P-256", x: priv.x, y: priv.y };
  const sealed = run("seal", { server_jwk: pub, method: "post", target: "/api/chat", body: '{"message":"MARKER"}', sign: true });
  assert.equal(sealed.headers["Privchat-E2E"], sealed.header);
  assert.match(sealed.headers["Signature-Input"], /"privchat-e2e"/);
  assert.ok(!Buffer.from(sealed.body_b64, "base64").toString("latin1").includes("MARKER"));
  const opened = run("open-request", { server_private_jwk: priv, header: sealed.header, method: "POST", target: "/api/chat", device_id: sealed.device_id, body_b64: sealed.body_b64 });
  assert.equal(Buffer.from(opened.plaintext_b64, "base64").toString(), '{"message":"MARKER"}');
  assert.equal(opened.secret_b64, sealed.secret_b64);
  const one = run("seal-response", { secret_b64: opened.secret_b64, enc_b64: opened.enc_b64, body_b64: b64('{"ok":1}') });
  assert.equal(run("open", { secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: one.nonce, body_b64: one.body_b64 }).text, '{"ok":1}');
  const st = run("seal-response", { secret_b64: opened.secret_b64, enc_b64: opened.enc_b64, chunks_b64: [b64("a"), b64("b")] });
  assert.deepEqual(run("open", { secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: st.nonce, chunks: st.chunks }), { events: ["a", "b"], final: true });
  const batch = run("open", { items: [
    { secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: st.nonce, chunks: [st.chunks[0]] },
    { secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: st.nonce, chunks: [st.chunks[1]] },
  ] });
  assert.deepEqual(batch.results.map((r) => r.error), ["e2e_truncated", "e2e_event_invalid"]);
  const bad = spawnSync(process.execPath, [SCRIPT, "open"], { input: JSON.stringify({ secret_b64: sealed.secret_b64, enc_b64: sealed.enc_b64, nonce: one.nonce, body_b64: b64("xxxxxxxxxxxxxxxxxxxx") }) });
  assert.equal(bad.status, 1);
  assert.equal(JSON.parse(bad.stdout.toString()).error, "e2e_response_invalid");
  const p = run("pairing", { code: "ab-cd", device_id: "d", kid: "k" });
  assert.equal(p.normalised, "ABCD");
});
