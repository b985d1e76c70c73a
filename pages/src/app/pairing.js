// Pairing this browser, for the pairing form (components/chat/DeviceAuth.js), which shows what these
// answer: makes the non-extractable device key, registers it with a one-time code from
// `privchat pair` and keeps it in IndexedDB; the device is then handed over (onPaired) and the
// session store keeps it. A failure comes back as describe.js's sentence and buttons.
//
// End to end (docs/E2E.md, "Pairing"): the server key published by /api/health is pinned here. A
// pairing link names its kid (#…&e2e=<kid>): another key is refused before anything is sent, and the
// registration carries a proof of the code bound to the key. A typed code (no kid from a link) is
// the password of an OPAQUE login instead. Either way the server's key confirmation is checked
// before the key is kept (ApiClient.registerDevice; here only which of the two it is).

import { exportPublicJwk, generateDeviceKey, jwkThumbprint, shortFingerprint } from "../lib/signing.js";
import { checkKeyStorage, saveDevice } from "../lib/keystore.js";
import { ApiError } from "../lib/errors.js";
import { describe } from "../lib/describe.js";

export class PairingController {
  /**
   * @param {{api: import("../lib/api.js").ApiClient, onPaired: (device, record) => void,
   *          onSignIn: () => void, keys?: {checkKeyStorage, saveDevice, generateDeviceKey}}} deps
   *   keys: the key functions (tests pass stand-ins; the page uses signing.js and keystore.js)
   */
  constructor({ api, onPaired, onSignIn, keys = {} }) {
    this.api = api;
    this.onPaired = onPaired;
    this.onSignIn = onSignIn;
    this.keys = { checkKeyStorage, saveDevice, generateDeviceKey, ...keys };
  }

  /** The server this browser would pair with. */
  get origin() {
    return this.api.origin;
  }

  /** Opens the API's sign-in (Cloudflare Access) in a new tab. */
  signIn() {
    this.onSignIn();
  }

  /**
   * The server key /api/health publishes, checked against the pairing link's kid (`pinKid`, null
   * for a typed code): {key: {kid, jwk, fingerprint}}, or {refused: "mismatch"} when it is not the
   * link's key (do not pair), {refused: "unknown"} when it cannot be had now.
   */
  async serverKey(pinKid = null) {
    try {
      await this.api.health();
      return { key: await this.api.publishedServerKey(this.api.lastHealth, pinKid) };
    } catch (err) {
      return { refused: err && err.code === "e2e_key_mismatch" ? "mismatch" : "unknown" };
    }
  }

  /**
   * Pairs with `code` under `name`: {device, record, serverKey} once the key is registered, kept
   * and handed over (onPaired); else {error: sentence, actions: describe.js's buttons
   * ({id, label, run: "signin"|"retry"}), wrongCode: the server refused the code, serverKey: the
   * key the page pinned, when it got that far}.
   */
  async pair({ code, name, pinKid = null }) {
    const { api, keys } = this;
    let serverKey = null;
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
      serverKey = await api.publishedServerKey(health || api.lastHealth, pinKid);
      const record = await api.registerDevice({
        pairingCode: code,
        publicJwk,
        name,
        device: { keyPair, deviceId, serverKey },
        typed: !pinKid, // no kid from a link: nothing vouches for the key, so an OPAQUE login
      });
      const device = await keys.saveDevice({ keyPair, deviceId, fingerprint, name: (record && record.name) || name, apiOrigin: api.origin, serverKey });
      this.onPaired(device, record);
      return { device, record, serverKey };
    } catch (err) {
      const { text, actions } = describe(err, { context: "pairing", apiOrigin: api.origin });
      return { error: text, actions, wrongCode: err instanceof ApiError && err.code === "pairing_invalid", serverKey };
    }
  }
}
