// The settings actions (app/settings.js) over a stand-in API: what the dialog is given to show.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SettingsController } from "../src/app/settings.js";
import { describe } from "../src/lib/describe.js";
import { ApiError, NetworkError } from "../src/lib/errors.js";

const SETTINGS = { system_prompt: "Be brief.", temperature: 0.7, max_tokens: 512, default_model: "big" };
const MODELS = [{ name: "small" }, { name: "big", label: "Big one" }];

/** A controller whose report words like the page and keeps what it was given. */
function controller(api) {
  const reported = [];
  const report = (err, context) => (reported.push([err.code, context]), describe(err, { context }).text);
  return { actions: new SettingsController({ api, report }), reported };
}

test("load gives the server's settings and the configured models", async () => {
  const { actions } = controller({ getSettings: async () => SETTINGS, listModels: async () => ({ default: "big", models: MODELS }) });
  assert.deepEqual(await actions.load(), { settings: SETTINGS, models: MODELS });
});

test("load without the model list still gives the settings (the list is a convenience)", async () => {
  const { actions, reported } = controller({ getSettings: async () => SETTINGS, listModels: async () => { throw new NetworkError("unreachable"); } });
  assert.deepEqual(await actions.load(), { settings: SETTINGS, models: [] });
  const older = controller({ getSettings: async () => SETTINGS }).actions; // a client without listModels
  assert.deepEqual((await older.load()).models, []);
  assert.deepEqual(reported, [], "nothing to report");
});

test("a failed load is its sentence, reported so the page reacts (a revoked device)", async () => {
  const { actions, reported } = controller({ getSettings: async () => { throw new ApiError(403, "device_revoked", "Revoked."); } });
  const loaded = await actions.load();
  assert.deepEqual(Object.keys(loaded), ["error"]);
  assert.equal(loaded.error, describe(new ApiError(403, "device_revoked", "Revoked.")).text);
  assert.deepEqual(reported, [["device_revoked", undefined]]);
});

test("save sends the changes and gives the server's answer", async () => {
  const sent = [];
  const { actions } = controller({ putSettings: async (c) => (sent.push(c), { ...c, defaults: {} }) });
  const changes = { system_prompt: "x", temperature: 1, max_tokens: 64 };
  assert.deepEqual(await actions.save(changes), { settings: { ...changes, defaults: {} } });
  assert.deepEqual(sent, [changes]);
  assert.deepEqual(await controller({ putSettings: async () => null }).actions.save(changes), { settings: null });
});

test("a refused save is its settings sentence and the field it is about", async () => {
  const bound = "Max tokens can be at most 2048: that is the whole context of the model.";
  let refusal = new ApiError(400, "max_tokens_too_large", bound);
  const { actions, reported } = controller({ putSettings: async () => { throw refusal; } });
  assert.deepEqual(await actions.save({ max_tokens: 100000 }), { error: bound, field: "max_tokens" });
  refusal = new ApiError(422, "validation_error", "temperature is too high");
  assert.deepEqual(await actions.save({ temperature: 9 }), { error: "Not saved: temperature is too high", field: null });
  assert.deepEqual(reported.map((r) => r[1]), ["settings", "settings"]);
});
