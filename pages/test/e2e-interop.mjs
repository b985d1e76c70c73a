#!/usr/bin/env node
// The page's end-to-end code (src/lib/e2e.js, docs/E2E.md) as a command, so the backend's tests
// can check Python <-> JS interop: `node pages/test/e2e-interop.mjs <command>` reads one JSON
// object on stdin and writes one JSON object on stdout. Bytes travel as standard base64 ("*_b64").
// Exit 0 with the answer; exit 1 with {"error": "<code>", "message": "..."} (an E2EError's code,
// pake-client's pairing_invalid, or "failed"). Batch: {"items": [input, ...]} ->
// {"results": [answer or {"error"}, ...]}, exit 0.
//
//   seal            the page seals a request (Python opens it): v2 header, padded body
//     in : {"server_jwk": {kty, crv, x, y}, "kid"?: str (default: the JWK's thumbprint; must match),
//           "method": "POST", "target": "/api/chat?x=1", "device_id"?: str,
//           "body"?: str (UTF-8 text) | "body_b64"?: str | neither (a request without a body),
//           "sign"?: true (make a device key, sign like the page; device_id is then its thumbprint),
//           "origin"?: "http://127.0.0.1:8765", "now"?: ms}
//     out: {"header": Privchat-E2E value (v=2, kid="…", enc=:…:), "kid", "enc_b64",
//           "body_b64": the sealed body (pad(body) sealed: a size class long) or null,
//           "secret_b64": the 16-byte response secret exported from the context, "device_id",
//           and with sign: "headers" {Privchat-E2E, Content-Digest, Signature-Input, Signature,
//           Content-Type?}, "public_jwk"}
//   open            the page opens a response (Python sealed it) with a seal's secret and enc; every
//                   sealed answer's content starts with its meta line (docs/E2E.md, "The meta line")
//     in : {"secret_b64", "enc_b64", "nonce": Privchat-E2E-Nonce value,
//           "body_b64": a one-chunk answer | "frames": [base64url of sealed frame 0, 1, ...] (a stream)}
//     out: one chunk: {"plaintext_b64": the body after META (unpadded), "text": that body as
//          UTF-8 text, "meta": the META object {status, kid, headers}} (bad padding, or no
//          readable META line, is e2e_response_invalid);
//          a stream: {"events": [each event's JSON line after META, without its line feed, ...],
//          "final": true, "meta": the META object} (frames open in order, each 1024, 4096 or
//          16384 bytes with zero padding, META the first line, done/error last and only at the
//          end of the final frame, the final frame present: else e2e_event_invalid /
//          e2e_truncated, as in the page). The status in META is not compared with anything
//          here (there is no HTTP status): the caller checks it.
//   open-request    the server side in JS: open a request Python's client code sealed (tests only)
//     in : {"server_private_jwk": {kty, crv, x, y, d}, "header", "method", "target", "device_id",
//           "body_b64"?}
//     out: {"kid", "plaintext_b64" (unpadded; bad padding is e2e_open_failed) or null, "secret_b64",
//           "enc_b64"}
//   seal-response   the server side in JS: seal a response with a secret and enc
//     in : {"secret_b64", "enc_b64", "nonce_b64"?: 16 bytes (default random),
//           "body_b64" (the whole content, padded and sealed as one final chunk: the caller puts
//             the META line in front of the body, nothing is added)
//           | "frames_b64": [[payload_b64, F], ...] (frame n carries payload n in a sealed frame of
//             F bytes, F one of 1024, 4096, 16384; the last one final; the payloads are the byte
//             string as given, META included by the caller)}
//     out: {"nonce": header value, "body_b64"} or {"nonce", "frames": [base64url, ...]}
//   pairing         {"code", "device_id", "kid"} -> {"pairing_proof", "key_confirmation", "normalised"}
//   pake-client     a typed code's OPAQUE login, the page's client half (src/lib/opaque.js,
//                   @serenity-kit/opaque with Argon2id m=19456 t=2 p=1; docs/E2E.md "A typed code");
//                   the password is the normalised code, as the page uses it. Messages base64url.
//     in : {"code"}                              step 1 (startLogin)
//     out: {"request": startLoginRequest (POST /api/auth/pairing's "request"),
//           "state": clientLoginState (give it back for step 2), "normalised"}
//     in : {"code", "state", "response": the server's loginResponse}   step 2 (finishLogin)
//     out: {"finalization": finishLoginRequest (POST /api/auth/device's "finalization"),
//           "session_key": base64url, 64 bytes}
//          or, when finishLogin gives nothing (a wrong code, or an answer that is not from the
//          record's server, or that does not parse): {"error": "pairing_invalid", "message"} with
//          exit 1 (in batch mode that object in its place in "results", exit 0), as the page,
//          which then sends nothing more
//   pake-macs       {"session_key", "device_id", "kid"} -> {"device_proof", "key_confirmation"}
//                   (src/lib/pake.js: HMAC-SHA256 keyed by the session key's bytes, labels
//                   "privchat pairing device v2" / "privchat pairing confirm v2")

import * as e2e from "../src/lib/e2e.js";
import * as opaque from "../src/lib/opaque.js";
import { deviceProof, loginConfirmation } from "../src/lib/pake.js";
import { ApiError, E2EError } from "../src/lib/errors.js";
import { exportPublicJwk, generateDeviceKey, jwkThumbprint, signRequest } from "../src/lib/signing.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (s) => new Uint8Array(Buffer.from(String(s), "base64"));
const bodyOf = (input) => (input.body_b64 !== undefined && input.body_b64 !== null ? unb64(input.body_b64) : typeof input.body === "string" ? new TextEncoder().encode(input.body) : null);

const commands = {
  async seal(input) {
    const key = await e2e.importServerKey(input.server_jwk, input.kid || null);
    const method = String(input.method || "GET").toUpperCase();
    const target = input.target || "/api/health";
    let deviceId = input.device_id || "interop-device";
    let keyPair = null;
    let publicJwk = null;
    if (input.sign) {
      keyPair = await generateDeviceKey();
      publicJwk = await exportPublicJwk(keyPair.publicKey);
      deviceId = await jwkThumbprint(publicJwk);
    }
    const sealed = await e2e.sealRequest({ serverKey: key, method, target, deviceId, bodyBytes: bodyOf(input) });
    const out = {
      header: sealed.header,
      kid: key.kid,
      enc_b64: b64(sealed.enc),
      body_b64: sealed.body ? b64(sealed.body) : null,
      secret_b64: b64(sealed.opener.secret),
      device_id: deviceId,
    };
    if (input.sign) {
      const sig = await signRequest({
        privateKey: keyPair.privateKey,
        keyId: deviceId,
        method,
        url: (input.origin || "http://127.0.0.1:8765") + target,
        body: sealed.body || new Uint8Array(0),
        e2e: sealed.header,
        now: typeof input.now === "number" ? input.now : Date.now(),
      });
      out.headers = { ...sig, "Privchat-E2E": sealed.header };
      if (sealed.body) out.headers["Content-Type"] = e2e.CONTENT_TYPE;
      out.public_jwk = publicJwk;
    }
    return out;
  },

  async open(input) {
    const opener = new e2e.ResponseOpener(unb64(input.secret_b64), unb64(input.enc_b64));
    if (Array.isArray(input.frames)) {
      const stream = await opener.stream(input.nonce);
      const reader = new e2e.FrameEventReader();
      const events = [];
      for (const f of input.frames) {
        const { payload, final } = await stream.next(f);
        for (const ev of reader.push(payload, final)) events.push(ev.line);
      }
      stream.end();
      reader.end();
      return { events, final: true, meta: reader.meta };
    }
    const { meta, body } = e2e.splitMeta(await opener.open(input.nonce, unb64(input.body_b64 || "")));
    return { plaintext_b64: b64(body), text: new TextDecoder().decode(body), meta };
  },

  async "open-request"(input) {
    const privateKey = await e2e.cipherSuite().kem.importKey("jwk", input.server_private_jwk, false);
    const body = input.body_b64 !== undefined && input.body_b64 !== null ? unb64(input.body_b64) : null;
    const r = await e2e.openRequest({ privateKey, header: input.header, method: input.method, target: input.target, deviceId: input.device_id, body });
    return { kid: r.kid, plaintext_b64: r.plaintext ? b64(r.plaintext) : null, secret_b64: b64(r.responder.secret), enc_b64: b64(r.enc) };
  },

  async "seal-response"(input) {
    const sealer = new e2e.ResponseSealer(unb64(input.secret_b64), unb64(input.enc_b64));
    const nonce = input.nonce_b64 ? unb64(input.nonce_b64) : null;
    if (Array.isArray(input.frames_b64)) {
      const r = await sealer.sealFrames(input.frames_b64.map(([payload, size]) => ({ payload: unb64(payload), size })), nonce);
      return { nonce: r.nonce, frames: r.chunks };
    }
    const r = await sealer.seal(unb64(input.body_b64 || ""), nonce);
    return { nonce: r.nonce, body_b64: b64(r.body) };
  },

  async pairing(input) {
    return {
      pairing_proof: await e2e.pairingProof(input.code, input.device_id, input.kid),
      key_confirmation: await e2e.keyConfirmation(input.code, input.device_id, input.kid),
      normalised: e2e.normaliseCode(input.code),
    };
  },

  async "pake-client"(input) {
    if (typeof input.code !== "string") throw new TypeError('"code" is required');
    const password = e2e.normaliseCode(input.code);
    if (input.state === undefined && input.response === undefined) {
      const { state, request } = await opaque.startLogin(password);
      return { request, state, normalised: password };
    }
    if (typeof input.state !== "string" || typeof input.response !== "string") throw new TypeError('step 2 needs "state" and "response"');
    const login = await opaque.finishLogin({ state: input.state, response: input.response, password });
    if (!login) throw new ApiError(403, "pairing_invalid", "finishLogin gave nothing: the code is not right, or the answer is not from the server that holds it");
    return { finalization: login.finalization, session_key: login.sessionKey };
  },

  async "pake-macs"(input) {
    return {
      device_proof: await deviceProof(input.session_key, input.device_id, input.kid),
      key_confirmation: await loginConfirmation(input.session_key, input.device_id, input.kid),
    };
  },
};

const failure = (err) => ({
  error: err instanceof E2EError || err instanceof ApiError ? err.code : "failed",
  message: String(err && err.message ? err.message : err),
});

async function readStdin() {
  // `node --test test/` does not pick this file up (not *.test.js); a TTY gets the usage.
  if (process.stdin.isTTY) return "";
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const name = process.argv[2];
  const run = commands[name];
  if (!run) {
    process.stderr.write(`usage: node e2e-interop.mjs ${Object.keys(commands).join("|")} < input.json\n`);
    process.exit(64);
  }
  const raw = await readStdin();
  const input = raw.trim() ? JSON.parse(raw) : {};
  if (Array.isArray(input.items)) {
    const results = [];
    for (const item of input.items) results.push(await run(item).catch(failure));
    process.stdout.write(JSON.stringify({ results }) + "\n");
    return;
  }
  try {
    process.stdout.write(JSON.stringify(await run(input)) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify(failure(err)) + "\n");
    process.exitCode = 1;
  }
}

main().catch((err) => {
  process.stderr.write(`e2e-interop: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
