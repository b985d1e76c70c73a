#!/usr/bin/env node
// Signs one request with pages/src/lib/signing.js so the backend's tests can check that the
// browser's signatures verify with the server's verifier, byte for byte.
//
//   node pages/test/sign-fixture.mjs '{"method":"POST","url":"http://127.0.0.1:8765/api/chat","body":"{}"}'
//   echo '{"method":"GET","url":"http://127.0.0.1:8765/api/devices"}' | node pages/test/sign-fixture.mjs
//
// Optional input fields: "now" (ms since the epoch; default Date.now()), "count" (sign that many
// requests with the same key; the output then has "requests": [...] as well), "e2e" (the
// Privchat-E2E header value the signature covers, as sent; default: a version 2 placeholder,
// v=2, kid "test-kid" and a 65-byte enc of zeros). headers then include "Privchat-E2E" too. The body is signed as
// given: to sign a sealed body, seal it first (test/e2e-interop.mjs seal does both).
// Prints {public_jwk, key_id, fingerprint, headers, method, url, body}.
// The key is generated non-extractable, like in the browser; only its public JWK leaves.

import { exportPublicJwk, generateDeviceKey, jwkThumbprint, shortFingerprint, signRequest } from "../src/lib/signing.js";

async function readStdin() {
  // `node --test test/` also runs this file (with a stdin that never closes): then sign the
  // default request as a smoke test instead of waiting for input.
  if (process.stdin.isTTY || process.env.NODE_TEST_CONTEXT) return "";
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const raw = process.argv[2] !== undefined ? process.argv[2] : await readStdin();
  const input = raw.trim() ? JSON.parse(raw) : {};
  const method = String(input.method || "GET").toUpperCase();
  const url = input.url || "http://127.0.0.1:8765/api/auth/device";
  const body = input.body === undefined || input.body === null ? "" : typeof input.body === "string" ? input.body : JSON.stringify(input.body);
  const now = typeof input.now === "number" ? input.now : Date.now();
  const e2e = typeof input.e2e === "string" ? input.e2e : `v=2, kid="test-kid", enc=:${Buffer.alloc(65).toString("base64")}:`;

  const kp = await generateDeviceKey();
  const jwk = await exportPublicJwk(kp.publicKey);
  const keyId = await jwkThumbprint(jwk);
  const headers = { ...(await signRequest({ privateKey: kp.privateKey, keyId, method, url, body, e2e, now })), "Privchat-E2E": e2e };
  const out = { public_jwk: jwk, key_id: keyId, fingerprint: shortFingerprint(keyId), headers, method, url, body };
  if (Number.isInteger(input.count) && input.count > 1) {
    out.requests = [];
    for (let i = 0; i < input.count; i++) {
      out.requests.push({ method, url, body, headers: { ...(await signRequest({ privateKey: kp.privateKey, keyId, method, url, body, e2e, now })), "Privchat-E2E": e2e } });
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  process.stderr.write(`sign-fixture: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
