// Dialogs: settings (kept on the server; the theme is this browser's), devices (list, revoke,
// forget this browser's key), and a confirmation dialog that says what is lost. Each dialog shows
// what its actions (app/settings.js, app/devices.js) answer, a failed request as the sentence they
// give; the requests are theirs.

import { h, clear, formatTime } from "../../lib/dom.js";
import { currentTheme, setTheme } from "../../lib/theme.js";
import { storageKeptText } from "../../lib/describe.js";

function dialogShell(id, title) {
  const body = h("div", { class: "dialog-body" });
  const closeBtn = h("button", { type: "button", class: "button small", value: "close" }, "Close");
  const dialog = h(
    "dialog",
    { id, class: "panel", "aria-labelledby": `${id}-title` },
    h("header", { class: "dialog-head" }, h("h2", { id: `${id}-title` }, title), closeBtn),
    body,
  );
  closeBtn.addEventListener("click", () => dialog.close());
  document.body.appendChild(dialog);
  return { dialog, body };
}

/** Asks before something destructive. Resolves true when confirmed. */
export function confirmDialog({ title, text, confirmLabel = "Delete", id = "confirm-dialog" }) {
  return new Promise((resolve) => {
    const old = document.getElementById(id);
    if (old) old.remove();
    const yes = h("button", { type: "button", id: "confirm-yes", class: "button danger" }, confirmLabel);
    const no = h("button", { type: "button", id: "confirm-no", class: "button" }, "Cancel");
    const dialog = h(
      "dialog",
      { id, class: "panel confirm", "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-text` },
      h("h2", { id: `${id}-title` }, title),
      h("p", { id: `${id}-text` }, text),
      h("div", { class: "dialog-actions" }, no, yes),
    );
    let answer = false;
    yes.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    no.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    no.focus();
  });
}

export class SettingsPanel {
  /** @param {{actions: import("../../app/settings.js").SettingsController}} opts  load(), save(changes) */
  constructor({ actions }) {
    this.actions = actions;
    const { dialog, body } = dialogShell("settings-dialog", "Settings");
    this.dialog = dialog;

    this.prompt = h("textarea", { id: "setting-system-prompt", rows: "5", maxlength: "8000" });
    this.temperature = h("input", { id: "setting-temperature", type: "number", min: "0", max: "2", step: "0.05", inputmode: "decimal" });
    this.maxTokens = h("input", { id: "setting-max-tokens", type: "number", min: "1", max: "32768", step: "1", inputmode: "numeric" });
    // The model a chat goes to when this browser has not picked one in the composer (every device).
    this.defaultModel = h("select", { id: "setting-default-model" });
    this.defaultModelRow = h("div", { id: "setting-default-model-row", hidden: true },
      h("label", { for: "setting-default-model" }, "Default model"), this.defaultModel,
      h("p", { class: "field-help" }, "Used by every device whose composer has no model picked."));
    this.status = h("p", { id: "settings-status", class: "form-status", role: "status", "aria-live": "polite" });
    this.save = h("button", { id: "settings-save", type: "submit", class: "button primary" }, "Save");
    this.reset = h("button", { id: "settings-reset", type: "button", class: "button", hidden: true, onclick: () => this.resetToDefaults() }, "Reset to defaults");
    this.defaults = null;
    // One sentence beside each field; every invalid field is marked at once.
    this.fieldErrors = {};
    for (const input of [this.temperature, this.maxTokens]) {
      const err = h("p", { id: `${input.id}-error`, class: "field-error", hidden: true });
      input.setAttribute("aria-describedby", err.id);
      this.fieldErrors[input.id] = err;
    }
    const form = h(
      "form",
      { id: "settings-form", class: "stack", novalidate: true },
      h("h3", { class: "settings-scope", id: "settings-server-heading" }, "Kept on your server: the same on every device"),
      h("label", { for: "setting-system-prompt" }, "System prompt"),
      this.prompt,
      h("div", { class: "field-row" },
        h("div", {}, h("label", { for: "setting-temperature" }, "Temperature"), this.temperature, this.fieldErrors["setting-temperature"]),
        h("div", {}, h("label", { for: "setting-max-tokens" }, "Max tokens per reply"), this.maxTokens, this.fieldErrors["setting-max-tokens"])),
      this.defaultModelRow,
      h("div", { class: "dialog-actions" }, this.reset, this.save),
      this.status,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });

    const themeGroup = h("fieldset", { class: "theme-group" }, h("legend", {}, "Theme (this browser only)"));
    for (const [value, label] of [["system", "Follow the system"], ["light", "Light"], ["dark", "Dark"]]) {
      const input = h("input", { type: "radio", name: "theme", value, id: `theme-${value}` });
      input.addEventListener("change", () => setTheme(value));
      themeGroup.append(h("div", { class: "radio" }, input, h("label", { for: `theme-${value}` }, label)));
    }
    this.themeGroup = themeGroup;
    body.append(
      form,
      h("h3", { class: "settings-scope", id: "settings-local-heading" }, "Kept in this browser only"),
      h("p", { class: "field-help", id: "settings-local-note" }, "The theme and notifications stay with this browser; each device has its own."),
      themeGroup,
    );
  }

  async open() {
    for (const r of this.themeGroup.querySelectorAll("input")) r.checked = r.value === currentTheme();
    this.status.textContent = "Loading…";
    this.dialog.showModal();
    const { settings: s, models, error } = await this.actions.load();
    if (error) {
      this.status.textContent = error;
      return;
    }
    this.prompt.value = s.system_prompt || "";
    this.temperature.value = s.temperature ?? "";
    this.maxTokens.value = s.max_tokens ?? "";
    this.defaults = s.defaults || null;
    this.reset.hidden = !this.defaults;
    this.showModels(models, s.default_model);
    this.markFields({});
    this.status.textContent = "";
  }

  /** The configured models as the choices for the default (the row stays hidden with fewer than two). */
  showModels(models, current) {
    this.defaultModel.replaceChildren(...models.map((m) => h("option", { value: m.name }, m.label || m.name)));
    this.defaultModel.value = current || (models[0] && models[0].name) || "";
    this.defaultModelRow.hidden = models.length < 2;
  }

  /** Marks each field of {inputId: sentence} beside the field; clears the others. */
  markFields(problems) {
    for (const [id, el] of Object.entries(this.fieldErrors)) {
      const input = id === this.temperature.id ? this.temperature : this.maxTokens;
      const text = problems[id] || "";
      el.textContent = text;
      el.hidden = !text;
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  /** Fills in the server's defaults (from the config file) and saves them. */
  async resetToDefaults() {
    if (!this.defaults) return;
    this.prompt.value = this.defaults.system_prompt ?? "";
    this.temperature.value = this.defaults.temperature ?? "";
    this.maxTokens.value = this.defaults.max_tokens ?? "";
    if (this.defaults.default_model) this.defaultModel.value = this.defaults.default_model;
    await this.submit();
    if (this.status.textContent === "Saved.") this.status.textContent = "Reset to the defaults and saved.";
  }

  async submit() {
    const temperature = Number(this.temperature.value);
    const maxTokens = Number(this.maxTokens.value);
    const problems = {};
    if (this.temperature.value === "" || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) {
      problems[this.temperature.id] = "Temperature must be a number from 0 to 2.";
    }
    if (this.maxTokens.value === "" || !Number.isInteger(maxTokens) || maxTokens < 16) {
      problems[this.maxTokens.id] = "Max tokens must be a whole number, 16 or more.";
    }
    this.markFields(problems);
    const ids = Object.keys(problems);
    if (ids.length) {
      this.status.textContent = ids.length === 1 ? problems[ids[0]] : `Not saved: ${ids.length} fields need a change (marked above).`;
      (ids[0] === this.temperature.id ? this.temperature : this.maxTokens).focus();
      return;
    }
    this.save.disabled = true;
    this.status.textContent = "Saving…";
    const changes = { system_prompt: this.prompt.value, temperature, max_tokens: maxTokens };
    if (!this.defaultModelRow.hidden && this.defaultModel.value) changes.default_model = this.defaultModel.value;
    const { settings: s, error, field } = await this.actions.save(changes);
    this.save.disabled = false;
    if (error) {
      this.status.textContent = error;
      // The server's bound (the model's context) is shown on its field, like the checks above.
      if (field === "max_tokens") {
        this.markFields({ [this.maxTokens.id]: error });
        this.maxTokens.focus();
      }
      return;
    }
    if (s) {
      this.prompt.value = s.system_prompt ?? this.prompt.value;
      this.temperature.value = s.temperature ?? temperature;
      this.maxTokens.value = s.max_tokens ?? maxTokens;
      if (s.default_model) this.defaultModel.value = s.default_model;
    }
    this.status.textContent = "Saved.";
  }
}

export class DevicesPanel {
  /**
   * @param {{actions: import("../../app/devices.js").DevicesController}} opts
   *   thisDevice(), storageKept(), list(), revoke(deviceId), forget()
   */
  constructor({ actions }) {
    this.actions = actions;
    const { dialog, body } = dialogShell("devices-dialog", "Devices");
    this.dialog = dialog;
    this.mine = h("div", { class: "this-device" });
    this.list = h("ul", { id: "device-list", class: "device-list" });
    // Revoked devices only pile up: they wait, folded, under the active ones.
    this.revokedList = h("ul", { id: "revoked-device-list", class: "device-list" });
    this.revokedSummary = h("summary", { id: "revoked-devices-summary" }, "Revoked devices");
    this.revokedBox = h("details", { id: "revoked-devices", class: "revoked-devices", hidden: true }, this.revokedSummary, this.revokedList);
    this.status = h("p", { id: "devices-status", class: "form-status", role: "status", "aria-live": "polite" });
    body.append(
      this.mine,
      h("h3", {}, "Paired devices"),
      this.list,
      this.revokedBox,
      this.status,
      h("div", { class: "dialog-actions" },
        h("button", { type: "button", id: "forget-device", class: "button small danger", onclick: () => this.forget() }, "Forget this browser's key")),
    );
  }

  renderMine() {
    const d = this.actions.thisDevice();
    clear(this.mine);
    if (!d) return;
    this.mine.append(
      h("h3", {}, "This browser"),
      h("p", {}, h("span", { class: "device-name" }, d.name || "This device")),
      h("p", {}, "Fingerprint: ", h("code", { id: "this-device-fingerprint", class: "fingerprint" }, d.fingerprint)),
      h("p", { class: "field-help" }, "It should match the fingerprint in ", h("code", {}, "privchat devices list"), " on your computer."),
      h("p", {}, "Server key: ", h("code", { id: "this-device-server-key", class: "fingerprint" }, (d.serverKey && d.serverKey.fingerprint) || "none pinned (pair again)")),
      h("p", { class: "field-help" }, "Everything this browser sends is encrypted to this key; it should match the server key that ", h("code", {}, "privchat pair"), " shows."),
      (this.storageNote = h("p", { id: "this-device-storage", class: "field-help storage-note" }, "")),
    );
    const note = this.storageNote;
    this.actions.storageKept().then((kept) => {
      note.dataset.kept = String(kept);
      note.textContent = storageKeptText(kept);
    });
  }

  async open() {
    this.renderMine();
    this.dialog.showModal();
    await this.refresh();
  }

  async refresh() {
    this.status.textContent = "Loading…";
    const { devices, error } = await this.actions.list();
    if (error) {
      this.status.textContent = error;
      return;
    }
    clear(this.list);
    clear(this.revokedList);
    let revokedCount = 0;
    for (const d of devices) {
      const revoked = d.status === "revoked";
      if (revoked) revokedCount++;
      (revoked ? this.revokedList : this.list).append(
        h("li", { class: "device-item", dataset: { id: d.device_id, status: d.status } },
          h("div", { class: "device-info" },
            h("strong", {}, d.name || "Unnamed device"), d.mine ? " (this browser)" : "",
            h("br"),
            h("code", { class: "fingerprint" }, d.fingerprint || ""),
            h("span", { class: "device-sub" }, ` · ${revoked ? "revoked" : "active"}${d.last_seen_at ? ` · last seen ${formatTime(d.last_seen_at)}` : ""}`)),
          revoked
            ? null
            : h("button", { type: "button", class: "button small danger revoke-button", "aria-label": `Revoke ${d.name || "device"}`, onclick: () => this.revoke(d) }, "Revoke")),
      );
    }
    this.revokedSummary.textContent = `Revoked devices (${revokedCount})`;
    this.revokedBox.hidden = revokedCount === 0;
    this.status.textContent = devices.length ? (revokedCount === devices.length ? "No active devices." : "") : "No devices.";
  }

  async revoke(d) {
    const ok = await confirmDialog({
      title: `Revoke “${d.name || "device"}”?`,
      text: d.mine
        ? "This is the browser you are using: it will stop working at once and has to be paired again with a new code."
        : `The device with fingerprint ${d.fingerprint} will get “device revoked” on its next request and has to be paired again to come back.`,
      confirmLabel: "Revoke",
    });
    if (!ok) return;
    const { error, mine } = await this.actions.revoke(d.device_id);
    if (error) {
      this.status.textContent = error;
      return;
    }
    if (mine) {
      this.dialog.close();
      return;
    }
    await this.refresh();
    this.status.textContent = `Revoked ${d.name || "the device"}.`;
  }

  /**
   * The one way this browser's key is deleted by the page: the owner's choice, here. No answer from
   * the server does it (an unsealed one may be forged); the fingerprint says which key goes.
   */
  async forget() {
    const d = this.actions.thisDevice();
    const which = d && d.fingerprint ? ` (fingerprint ${d.fingerprint})` : "";
    const ok = await confirmDialog({
      title: "Forget this browser's key?",
      text: `The signing key of this browser${which} is deleted from this browser. The server keeps its record until you revoke it; to chat here again you need a new pairing code.`,
      confirmLabel: "Forget key",
    });
    if (!ok) return;
    this.dialog.close();
    await this.actions.forget();
  }
}
