// The API client's failure facts: which NetworkError kind a failed fetch becomes, and the
// ApiError read from an error answer. (The sentences are describe.js's: see describe.test.js.)
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { ApiClient } from "../src/lib/api.js";
import { AccessSession, noteSignInStarted } from "../src/lib/access.js";
import { ApiError, NetworkError, errorFromResponse } from "../src/lib/errors.js";

const REMOTE = "https://chat-api.example.org";
const store = new Map();
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};
let noCorsAnswers;
let calls;

beforeEach(() => {
  store.clear();
  calls = [];
  noCorsAnswers = true;
  globalThis.fetch = async (url, init = {}) => {
    calls.push([String(url), init.mode]);
    if (init.mode === "no-cors") {
      if (!noCorsAnswers) throw new TypeError("Failed to fetch");
      return new Response(null, { status: 200 });
    }
    throw new TypeError("Failed to fetch"); // CORS error: the cause is hidden
  };
});

async function kindOf(client) {
  const err = await client.health().catch((e) => e);
  assert.ok(err instanceof NetworkError, String(err));
  assert.equal(err.origin, client.origin);
  return err.kind;
}

test("a failed fetch on the owner's own computer: unreachable, no probe", async () => {
  assert.equal(await kindOf(new ApiClient("http://127.0.0.1:8765")), "unreachable");
  assert.equal(calls.length, 1);
});

test("nothing answers at the API host name: unreachable", async () => {
  noCorsAnswers = false;
  assert.equal(await kindOf(new ApiClient(REMOTE)), "unreachable");
});

test("something answers but no session is known: Access wants a sign-in", async () => {
  assert.equal(await kindOf(new ApiClient(REMOTE)), "access");
});

test("the session is alive, or the owner just signed in: the computer behind the tunnel", async () => {
  const alive = new ApiClient(REMOTE);
  alive.transport.access.noteAnswer(new Response(null, { headers: { "Privchat-Access-Expires": String(Date.now() / 1000 + 3600) } }));
  assert.equal(await kindOf(alive), "tunnel");
  // Remembered for the next page load.
  assert.ok(new AccessSession(REMOTE).expiresMs > Date.now());
  store.clear();
  noteSignInStarted(REMOTE);
  assert.equal(await kindOf(new ApiClient(REMOTE)), "tunnel");
});

test("a redirect (Access's login) is a sign-in, not an answer", async () => {
  globalThis.fetch = async () => new Response(null, { status: 302, headers: { Location: "https://team.example/login" } });
  assert.equal(await kindOf(new ApiClient(REMOTE)), "access");
});

test("an error answer becomes an ApiError with the server's code, sentence and the sealed Retry-After", async () => {
  const answer = () => new Response(JSON.stringify({ error: { code: "queue_full", message: "The model is busy." } }), {
    status: 503,
    headers: { "Retry-After": "99" }, // outside the seal: never read
  });
  const err = await errorFromResponse(answer(), { status: 503, kid: "k", headers: { "retry-after": "7" } });
  assert.ok(err instanceof ApiError);
  assert.deepEqual([err.status, err.code, err.message, err.retryAfter], [503, "queue_full", "The model is busy.", 7]);
  assert.equal((await errorFromResponse(answer())).retryAfter, null, "no meta line: no Retry-After believed");
  const bare = await errorFromResponse(new Response("<html>", { status: 403 }));
  assert.deepEqual([bare.code, bare.message], ["access_denied", "Access was denied (Cloudflare Access sign-in may be needed)."]);
  assert.equal((await errorFromResponse(new Response("", { status: 502 }))).code, "http_502");
});

test("a fetch this page's own CSP blocked (a violation was reported for its origin): csp, no probe", async () => {
  const { noteViolation, forgetCspBlocks } = await import("../src/lib/csp.js");
  forgetCspBlocks();
  assert.equal(noteViolation({ effectiveDirective: "connect-src", blockedURI: "http://127.0.0.1:9765/api/health" }), "http://127.0.0.1:9765");
  assert.equal(noteViolation({ effectiveDirective: "script-src-elem", blockedURI: "https://cdn.example/x.js" }), null);
  assert.equal(noteViolation({ effectiveDirective: "connect-src", blockedURI: "inline" }), null);
  assert.equal(await kindOf(new ApiClient("http://127.0.0.1:9765")), "csp");
  assert.equal(await kindOf(new ApiClient("http://127.0.0.1:8765")), "unreachable"); // another origin is not blocked
  noteViolation({ violatedDirective: "connect-src", blockedURI: `${REMOTE}/api/health` });
  calls = [];
  assert.equal(await kindOf(new ApiClient(REMOTE)), "csp");
  assert.deepEqual(calls.map((c) => c[1]), ["cors"]); // no no-cors probe: the policy would block it too
  forgetCspBlocks();
});
