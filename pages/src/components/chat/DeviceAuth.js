// The pairing form: makes the non-extractable device key, registers it with a one-time code from
// `privchat pair` and keeps it in IndexedDB; the device is then handed over (onPaired) and the
// session store keeps it. Errors are worded by describe.js.
//
// End to end (docs/E2E.md, "Pairing"): the server key published by /api/health is pinned here. A
// pairing link names its kid (#…&e2e=<kid>): another key is refused before anything is sent, and the
// registration carries a proof of the code bound to the key. A typed code (no kid from a link) is
// the password of an OPAQUE login instead. Either way the server's key confirmation is checked
// before the key is kept (ApiClient.registerDevice; this form only says which of the two it is).
// The key's short fingerprint is shown to compare with `privchat pair`.

import { h, clear } from "../../lib/dom.js";
import { exportPublicJwk, generateDeviceKey, jwkThumbprint, shortFingerprint } from "../../lib/signing.js";
import { checkKeyStorage, saveDevice } from "../../lib/keystore.js";
import { ApiError } from "../../lib/errors.js";
import { describe } from "../../lib/describe.js";
import { setCodeText } from "../../lib/inline-code.js";

/** "Chrome on Linux", "Safari on iPhone", … from the user agent. */
export function suggestDeviceName(ua = (typeof navigator !== "undefined" && navigator.userAgent) || "") {
  let browser = "Browser";
  if (/Edg\//.test(ua)) browser = "Edge";
  else if (/OPR\/|Opera/.test(ua)) browser = "Opera";
  else if (/Firefox\/|FxiOS/.test(ua)) browser = "Firefox";
  else if (/Chrome\/|CriOS|Chromium/.test(ua)) browser = "Chrome";
  else if (/Safari\//.test(ua)) browser = "Safari";
  let os = "";
  if (/iPhone/.test(ua)) os = "iPhone";
  else if (/iPad/.test(ua)) os = "iPad";
  else if (/Android/.test(ua)) os = "Android";
  else if (/Windows/.test(ua)) os = "Windows";
  else if (/Mac OS X|Macintosh/.test(ua)) os = "macOS";
  else if (/CrOS/.test(ua)) os = "ChromeOS";
  else if (/Linux/.test(ua)) os = "Linux";
  return os ? `${browser} on ${os}` : browser;
}

export class DeviceAuth {
  /**
   * @param {HTMLElement} root    the pairing view (#pairing-view)
   * @param {{api: import("../../lib/api.js").ApiClient, onPaired: (device, record) => void,
   *          onSignIn: () => void, keys?: {checkKeyStorage, saveDevice, generateDeviceKey}}} opts
   *   keys: the key functions (tests pass stand-ins; the page uses signing.js and keystore.js)
   */
  constructor(root, { api, onPaired, onSignIn, keys = {} }) {
    this.root = root;
    this.api = api;
    this.onPaired = onPaired;
    this.onSignIn = onSignIn;
    this.keys = { checkKeyStorage, saveDevice, generateDeviceKey, ...keys };
    this.busy = false;
  }

  /**
   * Shows the pairing form.
   * @param {{code?: string, reason?: "first"|"revoked"|"unknown"|"storage"|"new_server"|"untrusted",
   *          storageError?: Error, e2e?: string|null}} opts
   *   code  from a pairing link: it fills the form and the Pair button takes the focus, so one tap
   *         pairs; it is never sent without that tap (or Enter).
   *   e2e   the server key id from the pairing link: the only key this pairing accepts
   */
  show({ code = "", reason = "first", storageError = null, e2e = null } = {}) {
    const origin = this.api.origin;
    this.pinKid = e2e || null;
    clear(this.root);

    const intro = {
      first: "This browser is not paired with your privchat server yet.",
      revoked: "This device was revoked on the server. Pair it again with a new code to keep using it here.",
      unknown: "The server does not know this browser's key (it may have been reset). Pair it again.",
      new_server: "This link pairs the browser with another privchat server.",
      storage: "This browser cannot keep a device key.",
      untrusted: "Your server's encryption key changed and this browser cannot confirm the new one. Pair it again with a new code from `privchat pair`.",
    }[reason] || "";

    this.codeInput = h("input", {
      id: "pair-code",
      name: "pairing_code",
      type: "text",
      required: true,
      autocomplete: "one-time-code",
      autocapitalize: "characters",
      spellcheck: "false",
      inputmode: "text",
      "aria-describedby": "pair-code-help",
    });
    this.codeInput.value = code || "";
    this.nameInput = h("input", {
      id: "device-name",
      name: "device_name",
      type: "text",
      required: true,
      maxlength: "64",
      autocomplete: "off",
    });
    this.nameInput.value = suggestDeviceName();
    this.button = h("button", { id: "pair-button", type: "submit", class: code ? "button primary big" : "button primary" }, "Pair this browser");
    // tabindex -1: the error takes the focus (and scrolls into view) so a phone shows it above the footer.
    this.error = h("div", { id: "pair-error", class: "error-box", role: "alert", tabindex: "-1", hidden: true });
    this.errorActions = h("div", { class: "error-actions" });

    const form = h(
      "form",
      { id: "pair-form", class: code ? "pair-form from-link" : "pair-form", novalidate: true },
      code ? h("p", { id: "pair-link-note", class: "field-help" }, "The code came with the link. Check the name, then press Pair this browser.") : null,
      h("label", { for: "pair-code" }, "Pairing code"),
      this.codeInput,
      h("p", { id: "pair-code-help", class: "field-help" }, "Run ", h("code", {}, "privchat pair"), " on your computer and type the code it prints, or open the link / scan the QR code it shows."),
      h("label", { for: "device-name" }, "Name for this device"),
      this.nameInput,
      this.button,
      this.error,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.pair();
    });

    this.root.append(
      h(
        "div",
        { class: "pair-card" },
        h("h1", { id: "pair-title" }, "Pair this browser"),
        setCodeText(h("p", { class: "lead", id: "pair-reason", dataset: { reason } }), intro),
        h(
          "ol",
          { class: "pair-steps" },
          h("li", { class: "pair-step-detail" }, "This page makes a signing key inside this browser. The private half can never leave it."),
          h("li", { class: "pair-step-detail" }, "The public half is registered with your server using the one-time code."),
          // The first step a phone shows (the two above are hidden there): it says when it applies by itself.
          h("li", { id: "pair-compare" }, "Once this browser is paired, this page shows its fingerprint at the top. Compare it with the ",
            h("code", {}, "fingerprint"), " line that ", h("code", {}, "privchat pair --wait"), " prints on your computer (or with ",
            h("code", {}, "privchat devices list"), ")."),
          h("li", { id: "pair-compare-server" }, "Everything this page sends is encrypted to your server's key. Check that the server key fingerprint below is the one ",
            h("code", {}, "privchat pair"), " shows."),
        ),
        h("p", { class: "api-origin" }, "Server: ", h("code", { id: "pair-api-origin" }, origin)),
        (this.serverKeyLine = h("p", { class: "api-origin", id: "pair-server-key-line" }, "Server key: ",
          (this.serverKeyText = h("code", { id: "pair-server-key", class: "fingerprint" }, "…")))),
        storageError
          ? h("div", { id: "pair-storage-error", class: "error-box", role: "alert" }, describe(storageError, { context: "pairing" }).text)
          : null,
        form,
      ),
    );
    this.root.hidden = false;
    if (!storageError) (code ? this.button : this.codeInput).focus();
    this.lookUpServerKey();
  }

  /** Fetches the published server key and shows its fingerprint (or why it is refused). */
  async lookUpServerKey() {
    const shown = this.serverKeyText;
    try {
      await this.api.health();
      const key = await this.api.publishedServerKey(this.api.lastHealth, this.pinKid);
      if (this.serverKeyText === shown) this.showServerKey(key);
    } catch (err) {
      if (this.serverKeyText !== shown) return;
      shown.textContent = err && err.code === "e2e_key_mismatch" ? "not the key in the pairing link: do not pair" : "not known yet";
      shown.dataset.state = err && err.code === "e2e_key_mismatch" ? "mismatch" : "unknown";
    }
  }

  showServerKey(key) {
    this.serverKeyText.textContent = key.fingerprint;
    this.serverKeyText.dataset.state = this.pinKid ? "pinned" : "shown";
    this.serverKeyText.dataset.kid = key.kid;
  }

  /** @param {{id, label, run}[]} actions  buttons under the sentence: run "signin" or "retry" */
  showError(text, actions = []) {
    clear(this.error);
    this.error.append(setCodeText(h("p", {}), text));
    if (actions.length) {
      const run = { signin: () => this.onSignIn(), retry: () => this.pair() };
      const buttons = actions.map((a) => h("button", { type: "button", class: "button small", id: a.id, onclick: run[a.run] }, a.label));
      this.error.append(h("div", { class: "error-actions" }, ...buttons.flatMap((b, i) => (i ? [" ", b] : [b]))));
    }
    this.error.hidden = false;
    // On a phone the form ends below the fold, behind the fixed footer: bring the sentence up.
    if (typeof this.error.scrollIntoView === "function") this.error.scrollIntoView({ block: "center", behavior: "smooth" });
    this.error.focus({ preventScroll: true });
  }

  async pair() {
    if (this.busy) return;
    const code = this.codeInput.value.trim();
    const name = this.nameInput.value.trim();
    if (!code) {
      this.showError("Enter the pairing code that `privchat pair` printed.");
      return;
    }
    if (!name) {
      this.showError("Give this device a name, so you can tell it apart in the device list.");
      return;
    }
    const { api, keys } = this;
    this.busy = true;
    this.button.disabled = true;
    this.button.textContent = "Pairing…";
    this.error.hidden = true;
    try {
      // Make sure the key can be kept before registering it anywhere.
      const keyPair = await keys.generateDeviceKey();
      await keys.checkKeyStorage(keyPair.privateKey);
      const publicJwk = await exportPublicJwk(keyPair.publicKey);
      const deviceId = await jwkThumbprint(publicJwk);
      const fingerprint = shortFingerprint(deviceId);
      let health = null;
      try {
        health = await api.health();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err; // 503 etc. still lets registration try with the key seen last
      }
      // The key every request is sealed to: the link's kid, when there is one, must be its thumbprint.
      const serverKey = await api.publishedServerKey(health || api.lastHealth, this.pinKid);
      this.showServerKey(serverKey);
      const record = await api.registerDevice({
        pairingCode: code,
        publicJwk,
        name,
        device: { keyPair, deviceId, serverKey },
        typed: !this.pinKid, // no kid from a link: nothing vouches for the key, so an OPAQUE login
      });
      const device = await keys.saveDevice({ keyPair, deviceId, fingerprint, name: (record && record.name) || name, apiOrigin: api.origin, serverKey });
      this.root.hidden = true;
      this.onPaired(device, record);
    } catch (err) {
      const { text, actions } = describe(err, { context: "pairing", apiOrigin: api.origin });
      this.showError(text, actions);
      if (err instanceof ApiError && err.code === "pairing_invalid") this.codeInput.setSelectionRange(0, this.codeInput.value.length);
    } finally {
      this.busy = false;
      this.button.disabled = false;
      this.button.textContent = "Pair this browser";
    }
  }
}
