import { test } from "node:test";
import assert from "node:assert/strict";
import { describe, KEY_STORAGE_TEXT, settingsField } from "../src/lib/describe.js";
import { ApiError, KeyStorageError, NetworkError, StreamError } from "../src/lib/errors.js";

const LOCAL = "http://127.0.0.1:8765";
const REMOTE = "https://chat-api.example.org";
const net = (kind, origin = REMOTE) => new NetworkError(kind, { origin });
const api = (code, message = "The server's sentence.", opts) => new ApiError(400, code, message, opts);
const ids = (d) => d.actions.map((a) => `${a.id}:${a.label}:${a.run}`);

test("pairing: each failure ends with what to do next", () => {
  const cases = [
    [api("pairing_invalid"), "That pairing code is not valid. Check it for typos, or run `privchat pair` again for a new one."],
    [api("pairing_expired"), "That pairing code has expired. Run `privchat pair` on your computer for a new one."],
    [api("pairing_locked"), "Too many wrong codes: pairing is locked for now. Wait a few minutes, then run `privchat pair` for a new code."],
    [api("rate_limited", "x", { retryAfter: 30 }), "Too many attempts. Wait 30 s and try again."],
    [api("rate_limited"), "Too many attempts. Wait a moment and try again."],
    [api("something_else"), "The server's sentence."],
    [net("offline"), "This browser is offline. Connect to the network and try again."],
    [net("tunnel"), "Your computer is not reachable through the tunnel: Cloudflare answered, but privchat did not. Check that the computer is awake and privchat and cloudflared are running, then try again."],
    [net("unreachable", LOCAL), `The privchat server at ${LOCAL} is not reachable — start it with \`privchat serve\`, then try again.`],
    [net("unreachable"), `The API at ${REMOTE} could not be reached: check the network connection, then try again.`],
    [new KeyStorageError(new Error("blocked")), KEY_STORAGE_TEXT],
    [new Error("boom"), "Pairing failed: boom"],
  ];
  for (const [err, text] of cases) {
    const d = describe(err, { context: "pairing" });
    assert.equal(d.text, text);
    assert.deepEqual(d.actions, []);
  }
});

test("pairing behind Access: the sentence comes with Sign in and Retry", () => {
  const viaRedirect = describe(net("access"), { context: "pairing" });
  assert.equal(viaRedirect.text, "Cloudflare Access sign-in needed: sign in to the API in a new tab (button above), then try again.");
  assert.deepEqual(ids(viaRedirect), ["pair-signin:Sign in (new tab):signin", "pair-retry:Retry:retry"]);
  const refused = describe(api("access_denied"), { context: "pairing" });
  assert.equal(refused.text, "Cloudflare Access refused the request: sign in to the API in a new tab, then try again.");
  assert.deepEqual(ids(refused), ids(viaRedirect));
});

test("inline: device and Access answers change the page (effect), network failures ask for a check", () => {
  assert.deepEqual(
    [api("device_revoked"), api("device_unknown"), api("access_denied")].map((e) => [describe(e).text, describe(e).effect]),
    [
      ["This device was revoked. Pair it again to continue.", "revoked"],
      ["This device is not paired with the server.", "unknown"],
      ["Cloudflare Access sign-in needed: sign in in a new tab, then retry.", "access"],
    ],
  );
  assert.equal(describe(net("tunnel")).effect, "recheck");
  assert.equal(describe(net("aborted")).effect, null);
  assert.equal(describe(api("not_found", "No such conversation.")).effect, null);
});

test("inline: the network sentences", () => {
  assert.equal(describe(net("offline")).text, "The browser is offline.");
  assert.equal(describe(net("access")).text, "Cloudflare Access sign-in needed.");
  assert.equal(describe(net("tunnel")).text, "Your computer is not reachable through the tunnel: it may be asleep or off, or privchat or cloudflared is not running.");
  assert.equal(describe(net("unreachable", LOCAL)).text, "Server not reachable — start it with `privchat serve`.");
  assert.equal(describe(net("unreachable")).text, `The API at ${REMOTE} could not be reached: check the network connection.`);
  assert.equal(describe(net("aborted")).text, "The request was stopped.");
  assert.equal(describe(net("interrupted")).text, "The connection closed before the reply was finished.");
  // The page's API origin wins over the one on the error.
  assert.equal(describe(new NetworkError("unreachable"), { apiOrigin: LOCAL }).text, "Server not reachable — start it with `privchat serve`.");
});

test("inline: busy answers say when to try again; a wrong clock says what to check", () => {
  assert.equal(describe(api("queue_full", "The model is busy.", { retryAfter: 4 })).text, "The model is busy. Try again in 4 s.");
  assert.equal(describe(api("rate_limited", "Slow down.")).text, "Slow down.");
  assert.equal(describe(api("clock_skew")).text, "This device's clock is too far off and could not be corrected. Check the system time.");
  assert.equal(describe(new KeyStorageError()).text, KEY_STORAGE_TEXT);
  assert.equal(describe("plain").text, "plain");
});

test("contexts: settings, import, send, a reply that failed mid-way", () => {
  assert.equal(describe(api("validation_error", "temperature must be at most 2"), { context: "settings" }).text, "Not saved: temperature must be at most 2");
  assert.equal(describe(api("validation_error", "bad"), { context: "inline" }).text, "bad");
  assert.equal(describe(new SyntaxError("Unexpected token"), { context: "import" }).text, "That file is not a privchat JSON export.");
  assert.equal(describe(net("aborted"), { context: "send" }).text, "Stopped before the server answered.");
  const stopped = describe(net("interrupted"), { context: "send", stopped: true });
  assert.equal(stopped.text, "Stopped before the server answered.");
  assert.equal(stopped.effect, null);
  assert.equal(describe(api("model_error", "model.bin is not a GGUF file"), { context: "send" }).text, "model.bin is not a GGUF file");
  assert.equal(describe(new StreamError({ code: "model_error", message: "out of memory" })).text, "The model stopped with an error: out of memory");
  assert.equal(describe(new StreamError({})).text, "The model stopped with an error: no reason given");
});

test("status: the sentences and buttons of the top bar", () => {
  const s = (err, apiOrigin = REMOTE) => describe(err, { context: "status", apiOrigin });
  assert.equal(s(net("access")).state, "access");
  assert.equal(s(api("device_revoked")).text, "Device revoked");
  assert.equal(s(api("device_unknown")).state, "unpaired");
  assert.equal(s(new Error("anything"), LOCAL).text, "Server not reachable — start it with `privchat serve`");
  assert.equal(s(new ApiError(502, null, null)).text, "Reconnecting… (The server answered 502.)");
});

test("every end-to-end code has its own sentence, in every context; a lost server key means pairing again", async () => {
  const { E2EError } = await import("../src/lib/errors.js");
  const page = ["e2e_key_mismatch", "e2e_key_unpinned", "e2e_unsealed", "e2e_response_invalid", "e2e_event_invalid", "e2e_truncated",
    "e2e_status_mismatch", "e2e_unsealed_refusal"];
  const server = ["e2e_required", "e2e_version_old", "e2e_malformed", "e2e_key_unknown", "e2e_open_failed", "e2e_key_retired"];
  const errors = [...page.map((c) => new E2EError(c, "detail")), ...server.map((c) => new ApiError(400, c, "server words"))];
  const texts = new Set();
  for (const err of errors) {
    for (const context of ["inline", "send", "pairing", "status", "settings"]) {
      const d = describe(err, { context });
      assert.ok(d.text && !d.text.includes("detail") && !d.text.includes("server words"), `${err.code} in ${context}: ${d.text}`);
    }
    texts.add(describe(err).text);
  }
  assert.equal(texts.size, errors.length);
  // Pairing again (which deletes this browser's key) is offered for the page's own finding only;
  // e2e_key_unknown can only come plain, as an unsealed refusal (api-e2e.test.js), never acted on.
  const err = new E2EError("e2e_key_unpinned");
  assert.equal(describe(err).effect, "untrusted");
  const s = describe(err, { context: "status" });
  assert.equal(s.state, "untrusted");
  assert.deepEqual(s.actions.map((a) => a.run), ["repair_key"]);
  assert.match(describe(new E2EError("e2e_key_mismatch"), { context: "pairing" }).text, /privchat pair/);
});

test("e2e_version_old: this page is an older copy than the server speaks; the way out is reloading it", () => {
  const err = new ApiError(400, "e2e_version_old", "server words");
  for (const context of ["inline", "send", "pairing", "settings"]) assert.match(describe(err, { context }).text, /Reload the page/);
  const s = describe(err, { context: "status" });
  assert.match(s.text, /reload/);
  assert.equal(s.state, "outdated");
  assert.deepEqual(s.actions.map((a) => a.run), ["reload"]);
  assert.equal(describe(err).effect, "outdated");
});

test("an unsealed refusal: the sentences the brief asks for; a plain e2e_key_unknown adds the owner's own way out", async () => {
  const { E2EError } = await import("../src/lib/errors.js");
  const plain = (hint) => new E2EError("e2e_unsealed_refusal", "detail", { status: 400, hint });
  assert.equal(describe(plain("device_revoked")).text,
    "An answer came back that privchat did not seal, so it was not believed. Retry; if it keeps happening, something between this browser and your computer is changing traffic.");
  const keyGone = describe(plain("e2e_key_unknown")).text;
  assert.match(keyGone, /did not seal/);
  assert.match(keyGone, /--revoke-old/);
  assert.match(keyGone, /under Devices \(“Forget this browser's key”\)/);
  // No device to forget while pairing: only the plain sentence.
  assert.doesNotMatch(describe(plain("e2e_key_unknown"), { context: "pairing" }).text, /Devices/);
  assert.equal(describe(new E2EError("e2e_status_mismatch")).text, "An answer's status was changed on the way, so it was not believed.");
});

test("a reply stream's sealed final error device_revoked is a revocation, as a sealed refusal is", () => {
  const err = new StreamError({ code: "device_revoked", message: "Revoked." });
  assert.deepEqual([describe(err).text, describe(err).effect], ["This device was revoked. Pair it again to continue.", "revoked"]);
  assert.equal(describe(err, { context: "status" }).state, "revoked");
  assert.match(describe(new StreamError({ code: "model_failed", message: "boom" })).text, /^The model stopped with an error: boom/);
});

test("csp: a request this page's own policy blocked names the origin and the fix, everywhere", () => {
  const err = new NetworkError("csp", { origin: "http://127.0.0.1:9765" });
  const status = describe(err, { context: "status", apiOrigin: "http://127.0.0.1:9765" });
  assert.equal(status.state, "csp");
  assert.match(status.text, /security policy \(CSP connect-src\) does not allow http:\/\/127\.0\.0\.1:9765/);
  assert.match(status.text, /`privchat tunnel setup`/);
  assert.deepEqual(status.actions.map((a) => a.run), ["reload"]);
  const inline = describe(err, { apiOrigin: "http://127.0.0.1:9765" });
  assert.match(inline.text, /does not allow http:\/\/127\.0\.0\.1:9765/);
});

test("settings: max_tokens refusals are the server's sentence, for the max tokens field", () => {
  const err = new ApiError(400, "max_tokens_too_large", "Max tokens can be at most 2048: that is the whole context of the model smollm2, which the message and the reply share.");
  const d = describe(err, { context: "settings" });
  assert.equal(d.text, err.message);
  assert.equal(d.field, "max_tokens");
  assert.equal(settingsField(err), "max_tokens");
  assert.equal(settingsField(new ApiError(400, "max_tokens_too_small", "x")), "max_tokens");
  assert.equal(settingsField(new ApiError(400, "validation_error", "x")), null);
});
