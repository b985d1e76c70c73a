// The settings kept on the owner's server (GET/PUT /api/settings), and the models a default can be
// picked from, for the settings dialog (components/chat/Panels.js), which shows what these answer.
// A failed request comes back as its sentence (report: describe.js words it, and the page reacts
// to what it means, a revoked device or a sign-in), never as an exception to catch.

import { settingsField } from "../lib/describe.js";

export class SettingsController {
  /** @param {{api, report: (err, context?: string) => string}} deps */
  constructor({ api, report }) {
    Object.assign(this, { api, report });
  }

  /**
   * The settings and the configured models:
   *   {settings: {system_prompt, temperature, max_tokens, default_model?, defaults?}, models: [{name, label?}]}
   *   or {error: sentence}
   */
  async load() {
    let settings;
    try {
      settings = (await this.api.getSettings()) || {};
    } catch (err) {
      return { error: this.report(err) };
    }
    return { settings, models: await this.models() };
  }

  /** The configured models; none when the list cannot be had (it is a convenience: the settings still load and save). */
  async models() {
    try {
      return ((await this.api.listModels()) || {}).models || [];
    } catch {
      return [];
    }
  }

  /**
   * Saves `changes`: {settings: the server's answer (null when it sent none)}, or
   * {error: sentence, field: the setting the refusal is about ("max_tokens") or null}.
   */
  async save(changes) {
    try {
      return { settings: (await this.api.putSettings(changes)) || null };
    } catch (err) {
      return { error: this.report(err, "settings"), field: settingsField(err) };
    }
  }
}
