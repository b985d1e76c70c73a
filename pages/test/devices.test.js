// The devices actions (app/devices.js) over a stand-in API: what the dialog is given to show, and
// what the page does when this browser is revoked or its key forgotten.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DevicesController } from "../src/app/devices.js";
import { Session } from "../src/lib/session.js";
import { describe } from "../src/lib/describe.js";
import { ApiError } from "../src/lib/errors.js";

const ME = { deviceId: "me", name: "Laptop", fingerprint: "AAAA-BBBB" };

function controller(api, { device = ME } = {}) {
  const calls = { revokedSelf: 0, forgot: 0, reported: [] };
  const actions = new DevicesController({
    api,
    session: new Session({ device }),
    report: (err, context) => (calls.reported.push(err.code), describe(err, { context }).text),
    onRevokedSelf: () => calls.revokedSelf++,
    onForget: async () => calls.forgot++,
    storageKept: async () => true,
  });
  return { actions, calls };
}

const listing = (devices) => ({ listDevices: async () => ({ devices }) });

test("the list marks this browser's own entry", async () => {
  const { actions } = controller(listing([
    { device_id: "me", name: "Laptop", status: "active" },
    { device_id: "phone", name: "Phone", status: "revoked" },
  ]));
  assert.deepEqual((await actions.list()).devices.map((d) => [d.device_id, d.mine]), [["me", true], ["phone", false]]);
  assert.deepEqual(await controller({ listDevices: async () => null }).actions.list(), { devices: [] });
  const unpaired = controller(listing([{ device_id: "me" }]), { device: null }).actions;
  assert.deepEqual((await unpaired.list()).devices.map((d) => d.mine), [false]);
  assert.equal(unpaired.thisDevice(), null);
});

test("a failed list is its sentence, reported", async () => {
  const { actions, calls } = controller({ listDevices: async () => { throw new ApiError(403, "device_revoked", "Revoked."); } });
  const listed = await actions.list();
  assert.deepEqual(Object.keys(listed), ["error"]);
  assert.match(listed.error, /revoked/i);
  assert.deepEqual(calls.reported, ["device_revoked"]);
});

test("revoking another device says so; revoking this browser stops the page using it", async () => {
  const revoked = [];
  const { actions, calls } = controller({ revokeDevice: async (id) => (revoked.push(id), {}) });
  assert.deepEqual(await actions.revoke("phone"), { revoked: true, mine: false });
  assert.equal(calls.revokedSelf, 0);
  assert.deepEqual(await actions.revoke("me"), { revoked: true, mine: true });
  assert.equal(calls.revokedSelf, 1);
  assert.deepEqual(revoked, ["phone", "me"]);
});

test("a refused revocation is its sentence and changes nothing", async () => {
  const { actions, calls } = controller({ revokeDevice: async () => { throw new ApiError(404, "not_found", "No such device."); } });
  const answer = await actions.revoke("me");
  assert.deepEqual(Object.keys(answer), ["error"]);
  assert.equal(calls.revokedSelf, 0);
});

test("this browser's device, whether its key is kept, and forgetting it", async () => {
  const { actions, calls } = controller({});
  assert.deepEqual(actions.thisDevice(), ME);
  assert.equal(await actions.storageKept(), true);
  await actions.forget();
  assert.equal(calls.forgot, 1);
});
