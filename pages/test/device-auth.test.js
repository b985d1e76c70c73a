import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, settle, until } from "./dom-env.js";
import { DeviceAuth, suggestDeviceName } from "../src/components/chat/DeviceAuth.js";
import { ApiError, KeyStorageError, NetworkError } from "../src/lib/errors.js";
import { KEY_STORAGE_TEXT } from "../src/lib/describe.js";
import { ApiClient } from "../src/lib/api.js";
import { PairingController } from "../src/app/pairing.js";
import { fakePairingApi, fakeServer, makeServerKey, pakeServer } from "./e2e-server.js";
import { keyConfirmation, pairingProof } from "../src/lib/e2e.js";

installDom();
const $ = (sel) => document.querySelector(sel);
let api;
let auth;
let paired;
let signIns;
let saved;
let server; // the server's end-to-end key: {privateKey, pin: {kid, jwk, fingerprint}}
let published; // what /api/health publishes as e2e

const fakeApi = (origin) => fakePairingApi({ origin, published: () => published });

beforeEach(async () => {
  server = server || (await makeServerKey());
  published = server.pin;
  fresh('<section id="pairing-view" hidden></section>');
  api = fakeApi();
  paired = [];
  signIns = 0;
  saved = [];
  // The form over its actions (app/pairing.js), which hold the stand-in API and key functions.
  auth = new DeviceAuth($("#pairing-view"), {
    actions: new PairingController({
      api,
      onPaired: (device, record) => paired.push([device, record]),
      onSignIn: () => signIns++,
      keys: {
        checkKeyStorage: async () => {},
        saveDevice: async (rec) => (saved.push(rec), { ...rec, createdAt: "now" }),
      },
    }),
  });
});

async function pairWith(code, name = "Test phone") {
  $("#pair-code").value = code;
  $("#device-name").value = name;
  $("#pair-button").click();
  // Key generation and the end-to-end checks are real WebCrypto work: wait for the pairing to end.
  await settle(5);
  await until(() => !auth.busy, "the pairing to end", 20_000);
  await settle(5);
}

const errorText = () => $("#pair-error p").textContent;
const errorButtons = () => [...$("#pair-error").querySelectorAll("button")].map((b) => `${b.id}:${b.textContent}`);

test("shows the form with the code from the link, the reason and the server", () => {
  auth.show({ code: "ABCD-1234", reason: "revoked" });
  assert.equal($("#pairing-view").hidden, false);
  assert.equal($("#pair-code").value, "ABCD-1234");
  assert.equal($("#pair-reason").dataset.reason, "revoked");
  assert.match($("#pair-reason").textContent, /revoked on the server/);
  assert.equal($("#pair-api-origin").textContent, "https://chat-api.example.org");
  assert.equal($("#pair-error").hidden, true);
  assert.equal(document.activeElement, $("#pair-button")); // a link: one tap on the focused button pairs
});

test("Access wants a sign-in: the sentence, a Sign in button and a Retry that tries again", async () => {
  auth.show({ reason: "first" });
  api.registerError = new NetworkError("access", { origin: api.origin });
  await pairWith("ABCD-1234");
  assert.equal($("#pair-error").hidden, false);
  assert.equal(errorText(), "Cloudflare Access sign-in needed: sign in to the API in a new tab (button above), then try again.");
  assert.deepEqual(errorButtons(), ["pair-signin:Sign in (new tab)", "pair-retry:Retry"]);
  $("#pair-signin").click();
  assert.equal(signIns, 1);
  api.registerError = null;
  $("#pair-retry").click();
  await until(() => paired.length === 1, "the retried pairing to end", 20_000);
  assert.equal(api.registered.length, 2);
  assert.equal(paired.length, 1);
});

test("Access refused the request outright: its own sentence, with the sign-in", async () => {
  auth.show({});
  api.registerError = new ApiError(403, "access_denied", "denied");
  await pairWith("ABCD-1234");
  assert.equal(errorText(), "Cloudflare Access refused the request: sign in to the API in a new tab, then try again.");
  assert.deepEqual(errorButtons(), ["pair-signin:Sign in (new tab)", "pair-retry:Retry"]);
});

test("a wrong code: the sentence, no sign-in, the form usable again", async () => {
  auth.show({});
  api.registerError = new ApiError(400, "pairing_invalid", "invalid");
  await pairWith("WRONG-CODE1");
  assert.equal($("#pair-error").textContent, "That pairing code is not valid. Check it for typos, or run privchat pair again for a new one.");
  assert.equal($("#pair-error code").textContent, "privchat pair");
  assert.deepEqual(errorButtons(), []);
  assert.equal($("#pair-button").disabled, false);
  assert.equal($("#pair-button").textContent, "Pair this browser");
  assert.equal(paired.length, 0);
});

test("an unreachable local server says how to start it", async () => {
  api = fakeApi("http://127.0.0.1:8765");
  auth.actions.api = api;
  auth.show({});
  api.healthError = new NetworkError("unreachable", { origin: api.origin });
  await pairWith("ABCD-1234");
  assert.equal(errorText(), "The privchat server at http://127.0.0.1:8765 is not reachable — start it with privchat serve, then try again.");
  assert.equal(api.registered.length, 0);
});

test("a busy server (health 503) still lets the registration try", async () => {
  auth.show({});
  api.healthError = new ApiError(503, "model_loading", "loading");
  await pairWith("ABCD-1234");
  assert.equal(paired.length, 1);
});

test("missing code or name: says what to fill in, sends nothing", async () => {
  auth.show({});
  await pairWith("", "phone");
  assert.equal(errorText(), "Enter the pairing code that privchat pair printed.");
  await pairWith("ABCD-1234", "  ");
  assert.equal(errorText(), "Give this device a name, so you can tell it apart in the device list.");
  assert.equal(api.registered.length, 0);
});

test("paired: the key is registered and kept with the server's name and the API origin, then handed over", async () => {
  auth.show({ code: "ABCD-1234" });
  await pairWith("ABCD-1234", "My phone");
  assert.equal(api.registered.length, 1);
  const req = api.registered[0];
  assert.equal(req.pairingCode, "ABCD-1234");
  assert.equal(req.typed, true, "no kid from a link: the typed code's OPAQUE login");
  assert.equal(req.name, "My phone");
  assert.equal(req.publicJwk.kty, "EC");
  assert.equal(saved.length, 1);
  assert.equal(saved[0].name, "My phone (server)");
  assert.equal(saved[0].apiOrigin, "https://chat-api.example.org");
  assert.match(saved[0].fingerprint, /\S/);
  const [[device, record]] = paired;
  assert.equal(device.deviceId, req.device.deviceId);
  assert.equal(record.name, "My phone (server)");
  assert.equal($("#pairing-view").hidden, true);
});

test("a browser that cannot keep keys: the storage sentence, before and after trying", async () => {
  auth.show({ reason: "storage", storageError: new KeyStorageError(new Error("blocked")) });
  assert.equal($("#pair-storage-error").textContent, KEY_STORAGE_TEXT);
  auth.actions.keys.checkKeyStorage = async () => {
    throw new KeyStorageError(new Error("blocked"));
  };
  await pairWith("ABCD-1234");
  assert.equal(errorText(), KEY_STORAGE_TEXT);
  assert.equal(api.registered.length, 0);
});

test("device names from the user agent", () => {
  assert.equal(suggestDeviceName("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"), "Safari on iPhone");
  assert.equal(suggestDeviceName("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"), "Chrome on Linux");
  assert.equal(suggestDeviceName(""), "Browser");
});

test("the pairing screen shows the server key's short fingerprint, and the device keeps the pinned key", async () => {
  auth.show({ code: "ABCD-1234", e2e: server.pin.kid });
  await until(() => $("#pair-server-key").textContent === server.pin.fingerprint, "the server key's fingerprint");
  assert.match($("#pair-server-key-line").textContent, /^Server key: [0-9A-F]{4} /);
  await pairWith("ABCD-1234");
  assert.equal(api.registered.length, 1);
  assert.equal(api.registered[0].typed, false, "the link pinned the key: its pairing_proof");
  assert.deepEqual(api.registered[0].device.serverKey, server.pin);
  assert.deepEqual(saved[0].serverKey, server.pin);
  assert.deepEqual(paired[0][0].serverKey, server.pin);
});

test("a health key that is not the pairing link's is refused before anything is sent (e2e_key_mismatch)", async () => {
  const other = await makeServerKey();
  published = other.pin;
  auth.show({ code: "ABCD-1234", e2e: server.pin.kid });
  await until(() => /not the key in the pairing link/.test($("#pair-server-key").textContent), "the mismatch to be said");
  await pairWith("ABCD-1234");
  assert.equal(api.registered.length, 0);
  assert.equal(saved.length, 0);
  assert.match(errorText(), /encryption key is not the one your pairing link or code vouches for/);
});

test("a registration whose key confirmation fails is not kept (e2e_key_mismatch)", async () => {
  const { E2EError } = await import("../src/lib/errors.js");
  auth.show({});
  api.registerError = new E2EError("e2e_key_mismatch", "confirmation");
  await pairWith("ABCD-1234");
  assert.equal(saved.length, 0);
  assert.equal(paired.length, 0);
  assert.match(errorText(), /privchat pair/);
});

// ------------------------------------------------------------ the real ApiClient against the stand-in server

/** The form over a real ApiClient whose fetch is the stand-in server (e2e-server.js) and health. */
function realApi(route) {
  const fake = fakeServer({ keys: [server], route });
  const real = new ApiClient("http://127.0.0.1:8765", { getDevice: async () => null });
  real.opaqueLoads = 0;
  const load = real.loadOpaque.bind(real);
  real.loadOpaque = () => ((real.opaqueLoads += 1), load());
  globalThis.fetch = async (url, init = {}) => {
    if (new URL(String(url)).pathname === "/api/health") {
      return new Response(JSON.stringify({ status: "ok", time: Date.now() / 1000, e2e: published }), { status: 200, headers: { "Content-Type": "application/json" } });
    }
    return fake.fetch(url, init);
  };
  auth.actions.api = real;
  api = real;
  return fake;
}

function pakeRoutes(pake) {
  return (req) => (req.target === "/api/auth/pairing" ? pake.start(req) : req.target === "/api/auth/device" ? pake.finish(req) : { status: 404, json: null });
}

test("a typed code pairs through the OPAQUE login and the key is kept only after its confirmation", async () => {
  const pake = await pakeServer({ code: "K7Q2-M9X0" });
  const fake = realApi(pakeRoutes(pake));
  auth.show({ reason: "first" });
  await pairWith("k7q2-m9xo", "My phone");
  assert.equal($("#pair-error").hidden, true, $("#pair-error").textContent);
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/auth/pairing", "/api/auth/device"]);
  assert.equal(api.opaqueLoads, 1);
  assert.equal(saved.length, 1);
  assert.deepEqual(saved[0].serverKey, server.pin);
  assert.equal(saved[0].deviceId, pake.state.registered[0].deviceId);
  assert.equal(paired.length, 1);
});

test("a wrong typed code: the pairing_invalid sentence, nothing sent after the login's start, nothing kept", async () => {
  const pake = await pakeServer({ code: "K7Q2-M9X0" });
  const fake = realApi(pakeRoutes(pake));
  auth.show({});
  await pairWith("K7Q2-M9X1");
  assert.equal($("#pair-error").textContent, "That pairing code is not valid. Check it for typos, or run privchat pair again for a new one.");
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/auth/pairing"]);
  assert.equal(saved.length, 0);
  assert.equal(paired.length, 0);
  assert.equal($("#pair-button").disabled, false);
});

test("a typed code whose confirmation names another key: e2e_key_mismatch, nothing pinned or kept", async () => {
  const pake = await pakeServer({ code: "K7Q2-M9X0", confirmKid: "a-swapped-servers-kid" });
  realApi(pakeRoutes(pake));
  auth.show({});
  await pairWith("K7Q2-M9X0");
  assert.match(errorText(), /encryption key is not the one your pairing link or code vouches for/);
  assert.equal(saved.length, 0);
  assert.equal(paired.length, 0);
});

test("a pairing link (with its kid) keeps the pairing_proof path and never loads the OPAQUE client", async () => {
  const fake = realApi(async (req) => (req.target === "/api/auth/device"
    ? { status: 201, json: { device_id: req.deviceId, name: req.json.name, key_confirmation: await keyConfirmation("K7Q2M9X0", req.deviceId, req.kid) } }
    : { status: 404, json: null }));
  auth.show({ code: "K7Q2-M9X0", e2e: server.pin.kid });
  await pairWith("K7Q2-M9X0");
  assert.equal($("#pair-error").hidden, true, $("#pair-error").textContent);
  assert.deepEqual(fake.seen.map((r) => r.target), ["/api/auth/device"]);
  assert.equal(fake.seen[0].json.pairing_proof, await pairingProof("K7Q2M9X0", saved[0].deviceId, server.pin.kid));
  assert.equal(api.opaqueLoads, 0);
  assert.equal(saved.length, 1);
});

test("typed-code refusals from the server are worded: locked, used, expired", async () => {
  for (const [status, code, text] of [
    [423, "pairing_locked", /^Too many wrong codes: pairing is locked for now/],
    [403, "pairing_used", /^That pairing code was already used: each code pairs one device\./],
    [403, "pairing_expired", /^That pairing code has expired\. Run privchat pair/],
  ]) {
    const fake = realApi(() => ({ status, json: { error: { code, message: code } } }));
    auth.show({});
    await pairWith("K7Q2-M9X0");
    assert.match(errorText(), text);
    assert.equal(fake.seen.length, 1);
    assert.equal(saved.length, 0);
  }
});

// ------------------------------------------------------------ the form alone, over stand-in actions

test("the form shows what its actions answer: the origin, a refused key, a failure's sentence and buttons", async () => {
  fresh('<section id="pairing-view" hidden></section>');
  const asked = [];
  const actions = {
    origin: "https://elsewhere.example",
    serverKey: async (kid) => (asked.push(["key", kid]), { refused: "mismatch" }),
    pair: async (req) => (asked.push(["pair", req]), { error: "Not now: `privchat pair`.", actions: [{ id: "pair-retry", label: "Retry", run: "retry" }], wrongCode: true, serverKey: null }),
    signIn: () => asked.push(["signin"]),
  };
  const form = new DeviceAuth($("#pairing-view"), { actions });
  form.show({ code: "ABCD-1234", e2e: "kid-1" });
  await settle(5);
  assert.equal($("#pair-api-origin").textContent, "https://elsewhere.example");
  assert.equal($("#pair-server-key").dataset.state, "mismatch");
  $("#pair-button").click();
  await settle(5);
  assert.deepEqual(asked[1], ["pair", { code: "ABCD-1234", name: $("#device-name").value, pinKid: "kid-1" }]);
  assert.equal($("#pair-error").textContent.startsWith("Not now: privchat pair."), true);
  assert.deepEqual(errorButtons(), ["pair-retry:Retry"]);
  assert.equal($("#pair-code").selectionStart, 0);
  assert.equal($("#pair-code").selectionEnd, "ABCD-1234".length);
  assert.equal($("#pairing-view").hidden, false);
});
