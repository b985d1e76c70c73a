import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, settle } from "./dom-env.js";
import { DevicesPanel, SettingsPanel, confirmDialog } from "../src/components/chat/Panels.js";
import { Session } from "../src/lib/session.js";
import { describe } from "../src/lib/describe.js";
import { ApiError } from "../src/lib/errors.js";
import { SettingsController } from "../src/app/settings.js";
import { DevicesController } from "../src/app/devices.js";

installDom();
const $ = (sel) => document.querySelector(sel);
const report = (err, context) => describe(err, { context }).text;

beforeEach(() => {
  fresh("");
  localStorage.clear();
  delete document.documentElement.dataset.theme;
});

// The dialogs over their actions (app/settings.js, app/devices.js), which hold a stand-in API.
const settingsPanel = (api) => new SettingsPanel({ actions: new SettingsController({ api, report }) });
const devicesPanel = ({ api, session, onForget = () => {}, onRevokedSelf = () => {} }) =>
  new DevicesPanel({ actions: new DevicesController({ api, session, report, onForget, onRevokedSelf }) });

function settingsApi() {
  return {
    saved: [],
    putError: null,
    async getSettings() {
      return { system_prompt: "Be brief.", temperature: 0.7, max_tokens: 512 };
    },
    async putSettings(s) {
      if (this.putError) throw this.putError;
      this.saved.push(s);
      return s;
    },
  };
}

test("settings: loads the server's values when opened", async () => {
  const panel = settingsPanel(settingsApi());
  await panel.open();
  assert.ok($("#settings-dialog").hasAttribute("open"));
  assert.equal($("#setting-system-prompt").value, "Be brief.");
  assert.equal($("#setting-temperature").value, "0.7");
  assert.equal($("#setting-max-tokens").value, "512");
  assert.equal($("#settings-status").textContent, "");
});

test("settings: checks the values, saves, and says what the server refused", async () => {
  const api = settingsApi();
  const panel = settingsPanel(api);
  await panel.open();
  $("#setting-temperature").value = "3";
  await panel.submit();
  assert.equal($("#settings-status").textContent, "Temperature must be a number from 0 to 2.");
  $("#setting-temperature").value = "1";
  $("#setting-max-tokens").value = "0";
  await panel.submit();
  assert.equal($("#settings-status").textContent, "Max tokens must be a whole number, 16 or more.");
  $("#setting-max-tokens").value = "8"; // below 16 the engines used to raise it silently
  await panel.submit();
  assert.equal($("#settings-status").textContent, "Max tokens must be a whole number, 16 or more.");
  assert.equal($("#setting-max-tokens").getAttribute("aria-invalid"), "true");
  $("#setting-max-tokens").value = "2048";
  await panel.submit();
  assert.equal($("#settings-status").textContent, "Saved.");
  assert.deepEqual(api.saved, [{ system_prompt: "Be brief.", temperature: 1, max_tokens: 2048 }]);
  api.putError = new ApiError(422, "validation_error", "max_tokens is above the model's context");
  await panel.submit();
  assert.equal($("#settings-status").textContent, "Not saved: max_tokens is above the model's context");
  assert.equal($("#settings-save").disabled, false);
});

test("settings: the server's bound on max tokens (the model's context) is shown on the field", async () => {
  const api = settingsApi();
  const panel = settingsPanel(api);
  await panel.open();
  const sentence = "Max tokens can be at most 2048: that is the whole context of the model smollm2, which the message and the reply share.";
  api.putError = new ApiError(400, "max_tokens_too_large", sentence);
  $("#setting-max-tokens").value = "100000";
  await panel.submit();
  assert.equal($("#setting-max-tokens-error").textContent, sentence);
  assert.equal($("#setting-max-tokens-error").hidden, false);
  assert.equal($("#setting-max-tokens").getAttribute("aria-invalid"), "true");
  assert.equal($("#settings-status").textContent, sentence);
  assert.doesNotMatch($("#settings-status").textContent, /Input should be/);
  // A value the server takes clears the mark.
  api.putError = null;
  $("#setting-max-tokens").value = "1024";
  await panel.submit();
  assert.equal($("#setting-max-tokens-error").hidden, true);
  assert.equal($("#setting-max-tokens").hasAttribute("aria-invalid"), false);
});

test("settings: the default model is chosen from the server's models and saved for every device", async () => {
  const api = settingsApi();
  api.getSettings = async () => ({ system_prompt: "Be brief.", temperature: 0.7, max_tokens: 512, default_model: "big",
                                   defaults: { system_prompt: "x", temperature: 0.7, max_tokens: 512, default_model: "small" } });
  api.listModels = async () => ({ default: "big", models: [{ name: "small", engine: "embedded" }, { name: "big", engine: "openai" }] });
  const panel = settingsPanel(api);
  await panel.open();
  assert.equal($("#setting-default-model-row").hidden, false);
  assert.deepEqual([...$("#setting-default-model").options].map((o) => o.value), ["small", "big"]);
  assert.equal($("#setting-default-model").value, "big");
  $("#setting-default-model").value = "small";
  await panel.submit();
  assert.equal(api.saved.at(-1).default_model, "small");
  // One model: nothing to choose, the row stays hidden and the field is not sent.
  api.listModels = async () => ({ default: "small", models: [{ name: "small", engine: "embedded" }] });
  await panel.open();
  assert.equal($("#setting-default-model-row").hidden, true);
  await panel.submit();
  assert.equal("default_model" in api.saved.at(-1), false);
});

test("settings: the theme applies at once and is kept in this browser", async () => {
  const panel = settingsPanel(settingsApi());
  await panel.open();
  assert.equal($("#theme-system").checked, true);
  $("#theme-dark").click();
  assert.equal(document.documentElement.dataset.theme, "dark");
  assert.equal(localStorage.getItem("privchat.theme"), "dark");
  $("#theme-system").click();
  assert.equal(document.documentElement.dataset.theme, undefined);
  assert.equal(localStorage.getItem("privchat.theme"), null);
});

test("settings: the dialog shows what its actions answer, a failed load as their sentence", async () => {
  const panel = new SettingsPanel({ actions: { load: async () => ({ error: "The server is not reachable." }), save: async () => assert.fail("nothing to save") } });
  await panel.open();
  assert.equal($("#settings-status").textContent, "The server is not reachable.");
  assert.equal($("#setting-system-prompt").value, "");
});

function devicesApi() {
  return {
    revoked: [],
    devices: [
      { device_id: "me", name: "This laptop", fingerprint: "AAAA-BBBB", status: "active" },
      { device_id: "phone", name: "Old phone", fingerprint: "CCCC-DDDD", status: "active" },
      { device_id: "gone", name: "Tablet", fingerprint: "EEEE-FFFF", status: "revoked" },
    ],
    async listDevices() {
      return { devices: this.devices };
    },
    async revokeDevice(id) {
      this.revoked.push(id);
      this.devices = this.devices.map((d) => (d.device_id === id ? { ...d, status: "revoked" } : d));
      return {};
    },
  };
}

async function answer(yes) {
  await settle();
  $(yes ? "#confirm-yes" : "#confirm-no").click();
  await settle(10);
}

test("devices: this browser (from the session) is named, revoked ones have no button", async () => {
  const session = new Session({ device: { deviceId: "me", name: "This laptop", fingerprint: "AAAA-BBBB" } });
  const panel = devicesPanel({ api: devicesApi(), session });
  await panel.open();
  assert.equal($("#this-device-fingerprint").textContent, "AAAA-BBBB");
  const rows = [...document.querySelectorAll(".device-item")].map((li) => [li.dataset.id, li.dataset.status, li.textContent.includes("(this browser)"), Boolean(li.querySelector(".revoke-button"))]);
  assert.deepEqual(rows, [["me", "active", true, true], ["phone", "active", false, true], ["gone", "revoked", false, false]]);
});

test("devices: revoking another device asks first, then says so", async () => {
  const api = devicesApi();
  const session = new Session({ device: { deviceId: "me" } });
  const panel = devicesPanel({ api, session });
  await panel.open();
  document.querySelector('[data-id="phone"] .revoke-button').click();
  await settle();
  assert.match($("#confirm-dialog-text").textContent, /CCCC-DDDD will get “device revoked”/);
  await answer(false);
  assert.deepEqual(api.revoked, []);
  document.querySelector('[data-id="phone"] .revoke-button').click();
  await answer(true);
  assert.deepEqual(api.revoked, ["phone"]);
  assert.equal($("#devices-status").textContent, "Revoked Old phone.");
});

test("devices: revoking this browser closes the dialog and hands over; forgetting the key asks first", async () => {
  let revokedSelf = 0;
  let forgot = 0;
  const session = new Session({ device: { deviceId: "me" } });
  const panel = devicesPanel({ api: devicesApi(), session, onForget: () => forgot++, onRevokedSelf: () => revokedSelf++ });
  await panel.open();
  document.querySelector('[data-id="me"] .revoke-button').click();
  await answer(true);
  assert.equal(revokedSelf, 1);
  assert.ok(!$("#devices-dialog").hasAttribute("open"));
  await panel.open();
  $("#forget-device").click();
  await answer(true);
  assert.equal(forgot, 1);
});

test("the confirmation dialog resolves with the answer and goes away", async () => {
  const asked = confirmDialog({ title: "Clear all history?", text: "Everything goes.", confirmLabel: "Delete everything", id: "clear-dialog" });
  assert.equal($("#clear-dialog-title").textContent, "Clear all history?");
  assert.equal($("#confirm-yes").textContent, "Delete everything");
  assert.equal(document.activeElement, $("#confirm-no"));
  $("#confirm-yes").click();
  assert.equal(await asked, true);
  assert.equal($("#clear-dialog"), null);
});
