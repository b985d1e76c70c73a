// The pairing actions (app/pairing.js) over a stand-in API and key store: the server key shown
// before pairing, the registration and what is kept, and each failure as the form is given it.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { PairingController } from "../src/app/pairing.js";
import { ApiError, E2EError, KeyStorageError, NetworkError } from "../src/lib/errors.js";
import { fakePairingApi, makeServerKey } from "./e2e-server.js";

const server = await makeServerKey();
const ORIGIN = "https://chat-api.example.org";
let published; // what health publishes as e2e
let api;
let kept;
let handed;
let signIns;

const fakeApi = () => fakePairingApi({ origin: ORIGIN, published: () => published });

function pairing(keys = {}) {
  return new PairingController({
    api,
    onPaired: (device, record) => handed.push([device, record]),
    onSignIn: () => signIns++,
    keys: { checkKeyStorage: async () => {}, saveDevice: async (rec) => (kept.push(rec), { ...rec, createdAt: "now" }), ...keys },
  });
}

beforeEach(() => {
  published = server.pin;
  api = fakeApi();
  kept = [];
  handed = [];
  signIns = 0;
});

test("the server key: the published one, the link's kid checked; refused as a mismatch or not known yet", async () => {
  assert.deepEqual(await pairing().serverKey(server.pin.kid), { key: server.pin });
  assert.deepEqual(await pairing().serverKey(null), { key: server.pin });
  published = (await makeServerKey()).pin;
  assert.deepEqual(await pairing().serverKey(server.pin.kid), { refused: "mismatch" });
  api.healthError = new NetworkError("unreachable", { origin: ORIGIN });
  assert.deepEqual(await pairing().serverKey(server.pin.kid), { refused: "unknown" });
});

test("a pairing link's code: registered with the pinned key, kept with the server's name and origin, handed over", async () => {
  const paired = await pairing().pair({ code: "ABCD-1234", name: "Phone", pinKid: server.pin.kid });
  assert.equal(paired.error, undefined);
  const [req] = api.registered;
  assert.deepEqual([req.pairingCode, req.name, req.typed], ["ABCD-1234", "Phone", false]);
  assert.deepEqual(req.device.serverKey, server.pin);
  assert.equal(kept.length, 1);
  assert.deepEqual([kept[0].name, kept[0].apiOrigin, kept[0].deviceId], ["Phone (server)", ORIGIN, req.device.deviceId]);
  assert.deepEqual(kept[0].serverKey, server.pin);
  assert.deepEqual(handed, [[paired.device, paired.record]]);
  assert.deepEqual(paired.serverKey, server.pin);
});

test("a typed code (no kid) is an OPAQUE login; a busy server (503 on health) still lets it try", async () => {
  api.healthError = new ApiError(503, "model_loading", "loading");
  api.lastHealth = { status: "ok", e2e: server.pin }; // the key seen last
  const paired = await pairing().pair({ code: "ABCD-1234", name: "Phone" });
  assert.equal(paired.error, undefined);
  assert.equal(api.registered[0].typed, true);
  assert.equal(handed.length, 1);
});

test("a wrong code: the pairing sentence, marked as the code's fault, the pinned key given, nothing kept", async () => {
  api.registerError = new ApiError(403, "pairing_invalid", "invalid");
  const paired = await pairing().pair({ code: "WRONG", name: "Phone", pinKid: server.pin.kid });
  assert.match(paired.error, /^That pairing code is not valid/);
  assert.deepEqual(paired.actions, []);
  assert.equal(paired.wrongCode, true);
  assert.deepEqual(paired.serverKey, server.pin);
  assert.deepEqual([kept.length, handed.length], [0, 0]);
});

test("Access in the way: the sentence with its Sign in and Retry buttons; signIn opens the sign-in", async () => {
  api.registerError = new NetworkError("access", { origin: ORIGIN });
  const actions = pairing();
  const paired = await actions.pair({ code: "ABCD-1234", name: "Phone" });
  assert.deepEqual(paired.actions.map((a) => a.run), ["signin", "retry"]);
  assert.equal(paired.wrongCode, false);
  actions.signIn();
  assert.equal(signIns, 1);
  assert.equal(actions.origin, ORIGIN);
});

test("nothing is sent when the key cannot be kept, nor when health's key is not the link's", async () => {
  const storage = await pairing({ checkKeyStorage: async () => { throw new KeyStorageError(new Error("blocked")); } })
    .pair({ code: "ABCD-1234", name: "Phone" });
  assert.match(storage.error, /\S/);
  assert.equal(storage.serverKey, null);
  published = (await makeServerKey()).pin;
  const swapped = await pairing().pair({ code: "ABCD-1234", name: "Phone", pinKid: server.pin.kid });
  assert.match(swapped.error, /encryption key is not the one your pairing link or code vouches for/);
  assert.equal(api.registered.length, 0);
  api.registerError = new E2EError("e2e_key_mismatch", "confirmation");
  published = server.pin;
  const unconfirmed = await pairing().pair({ code: "ABCD-1234", name: "Phone", pinKid: server.pin.kid });
  assert.match(unconfirmed.error, /privchat pair/);
  assert.deepEqual([kept.length, handed.length], [0, 0]);
});
