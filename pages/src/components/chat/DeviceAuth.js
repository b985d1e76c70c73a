// The pairing form: the code from `privchat pair` (typed, or filled in by a pairing link), a name for
// this device, the server and its key's short fingerprint to compare with `privchat pair`, and
// what went wrong, with its buttons. The pairing itself (the key, the registration, keeping it) is
// the pairing actions' (app/pairing.js); this form shows what they answer.

import { h, clear } from "../../lib/dom.js";
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
   * @param {{actions: import("../../app/pairing.js").PairingController}} opts
   *   actions: origin, serverKey(pinKid), pair({code, name, pinKid}), signIn()
   */
  constructor(root, { actions }) {
    this.root = root;
    this.actions = actions;
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
    const origin = this.actions.origin;
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

  /** Asks for the published server key and shows its fingerprint (or why it is refused). */
  async lookUpServerKey() {
    const shown = this.serverKeyText;
    const { key, refused } = await this.actions.serverKey(this.pinKid);
    if (this.serverKeyText !== shown) return; // the form was drawn again meanwhile
    if (key) {
      this.showServerKey(key);
      return;
    }
    shown.textContent = refused === "mismatch" ? "not the key in the pairing link: do not pair" : "not known yet";
    shown.dataset.state = refused;
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
      const run = { signin: () => this.actions.signIn(), retry: () => this.pair() };
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
    this.busy = true;
    this.button.disabled = true;
    this.button.textContent = "Pairing…";
    this.error.hidden = true;
    try {
      const paired = await this.actions.pair({ code, name, pinKid: this.pinKid });
      if (paired.serverKey) this.showServerKey(paired.serverKey);
      if (!paired.error) {
        this.root.hidden = true;
        return;
      }
      this.showError(paired.error, paired.actions);
      if (paired.wrongCode) this.codeInput.setSelectionRange(0, this.codeInput.value.length);
    } finally {
      this.busy = false;
      this.button.disabled = false;
      this.button.textContent = "Pair this browser";
    }
  }
}
