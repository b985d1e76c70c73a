// Pairing and device state: makes the non-extractable device key, registers it with a one-time
// code from `privchat pair`, keeps it in IndexedDB and shows the fingerprint to compare with the CLI.

import { h, clear } from "../../lib/dom.js";
import { exportPublicJwk, generateDeviceKey, jwkThumbprint, shortFingerprint } from "../../lib/signing.js";
import { checkKeyStorage, forgetDevice, KeyStorageError, loadDevice, saveDevice } from "../../lib/keystore.js";
import { ApiError, NetworkError } from "../../lib/api.js";
import { isLoopbackOrigin } from "../../lib/config.js";

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

/** The sentence for a failed pairing attempt. */
export function pairingErrorText(err, apiOrigin) {
  if (err instanceof KeyStorageError) return err.message;
  if (err instanceof NetworkError) {
    if (err.kind === "offline") return "This browser is offline. Connect to the network and try again.";
    if (err.kind === "access") return "Cloudflare Access sign-in needed: sign in to the API in a new tab (button above), then try again.";
    if (err.kind === "tunnel") {
      return "Your computer is not reachable through the tunnel: Cloudflare answered, but privchat did not. Check that the computer is awake and privchat and cloudflared are running, then try again.";
    }
    return isLoopbackOrigin(apiOrigin)
      ? `The privchat server at ${apiOrigin} is not reachable — start it with \`privchat serve\`, then try again.`
      : `The API at ${apiOrigin} could not be reached: check the network connection, then try again.`;
  }
  if (err instanceof ApiError) {
    switch (err.code) {
      case "pairing_invalid":
        return "That pairing code is not valid. Check it for typos, or run `privchat pair` again for a new one.";
      case "pairing_expired":
        return "That pairing code has expired. Run `privchat pair` on your computer for a new one.";
      case "pairing_locked":
        return "Too many wrong codes: pairing is locked for now. Wait a few minutes, then run `privchat pair` for a new code.";
      case "rate_limited":
        return `Too many attempts. Wait${err.retryAfter ? ` ${err.retryAfter} s` : " a moment"} and try again.`;
      case "access_denied":
        return "Cloudflare Access refused the request: sign in to the API in a new tab, then try again.";
      default:
        return err.message;
    }
  }
  return `Pairing failed: ${err && err.message ? err.message : err}`;
}

export class DeviceAuth {
  /**
   * @param {HTMLElement} root    the pairing view (#pairing-view)
   * @param {{getApi: () => import("../../lib/api.js").ApiClient, onPaired: (device, record) => void,
   *          onSignIn: () => void}} opts
   */
  constructor(root, { getApi, onPaired, onSignIn }) {
    this.root = root;
    this.getApi = getApi;
    this.onPaired = onPaired;
    this.onSignIn = onSignIn;
    this.device = null;
    this.busy = false;
  }

  /** Loads the stored device (or null). Throws KeyStorageError when IndexedDB is unusable. */
  async load() {
    this.device = await loadDevice();
    return this.device;
  }

  async forget() {
    try {
      await forgetDevice();
    } finally {
      this.device = null;
    }
  }

  /**
   * Shows the pairing form.
   * @param {{code?: string, reason?: "first"|"revoked"|"unknown"|"storage"|"new_server", storageError?: Error}} opts
   */
  show({ code = "", reason = "first", storageError = null } = {}) {
    const api = this.getApi();
    const origin = api.origin;
    clear(this.root);

    const intro = {
      first: "This browser is not paired with your privchat server yet.",
      revoked: "This device was revoked on the server. Pair it again with a new code to keep using it here.",
      unknown: "The server does not know this browser's key (it may have been reset). Pair it again.",
      new_server: "This link pairs the browser with another privchat server.",
      storage: "This browser cannot keep a device key.",
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
    this.button = h("button", { id: "pair-button", type: "submit", class: "button primary" }, "Pair this browser");
    this.error = h("div", { id: "pair-error", class: "error-box", role: "alert", hidden: true });
    this.errorActions = h("div", { class: "error-actions" });

    const form = h(
      "form",
      { id: "pair-form", class: "pair-form", novalidate: true },
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
        h("p", { class: "lead", id: "pair-reason", dataset: { reason } }, intro),
        h(
          "ol",
          { class: "pair-steps" },
          h("li", {}, "This page makes a signing key inside this browser. The private half can never leave it."),
          h("li", {}, "The public half is registered with your server using the one-time code."),
          h("li", {}, "Afterwards, compare the fingerprint shown here with the one ", h("code", {}, "privchat pair"), " prints."),
        ),
        h("p", { class: "api-origin" }, "Server: ", h("code", { id: "pair-api-origin" }, origin)),
        storageError
          ? h("div", { id: "pair-storage-error", class: "error-box", role: "alert" }, storageError.message)
          : null,
        form,
      ),
    );
    this.root.hidden = false;
    if (!storageError) (code ? this.nameInput : this.codeInput).focus();
  }

  showError(text, { signIn = false } = {}) {
    clear(this.error);
    this.error.append(h("p", {}, text));
    if (signIn) {
      this.error.append(
        h("div", { class: "error-actions" },
          h("button", { type: "button", class: "button small", id: "pair-signin", onclick: () => this.onSignIn() }, "Sign in (new tab)"),
          " ",
          h("button", { type: "button", class: "button small", id: "pair-retry", onclick: () => this.pair() }, "Retry")),
      );
    }
    this.error.hidden = false;
  }

  async pair() {
    if (this.busy) return;
    const code = this.codeInput.value.trim();
    const name = this.nameInput.value.trim();
    if (!code) {
      this.showError("Enter the pairing code that `privchat pair` printed.");
      this.codeInput.focus();
      return;
    }
    if (!name) {
      this.showError("Give this device a name, so you can tell it apart in the device list.");
      this.nameInput.focus();
      return;
    }
    const api = this.getApi();
    this.busy = true;
    this.button.disabled = true;
    this.button.textContent = "Pairing…";
    this.error.hidden = true;
    try {
      // Make sure the key can be kept before registering it anywhere.
      const keyPair = await generateDeviceKey();
      await checkKeyStorage(keyPair.privateKey);
      const publicJwk = await exportPublicJwk(keyPair.publicKey);
      const deviceId = await jwkThumbprint(publicJwk);
      const fingerprint = shortFingerprint(deviceId);
      try {
        await api.health();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err; // 503 etc. still lets registration try
      }
      const record = await api.registerDevice({
        pairingCode: code,
        publicJwk,
        name,
        device: { keyPair, deviceId },
      });
      this.device = await saveDevice({ keyPair, deviceId, fingerprint, name: (record && record.name) || name, apiOrigin: api.origin });
      this.root.hidden = true;
      this.onPaired(this.device, record);
    } catch (err) {
      const signIn = (err instanceof NetworkError && err.kind === "access") ||
        (err instanceof ApiError && err.code === "access_denied");
      this.showError(pairingErrorText(err, api.origin), { signIn });
      if (err instanceof ApiError && err.code === "pairing_invalid") this.codeInput.select();
    } finally {
      this.busy = false;
      this.button.disabled = false;
      this.button.textContent = "Pair this browser";
    }
  }
}
