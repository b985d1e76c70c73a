// The paired devices, for the devices dialog (components/chat/Panels.js), which shows what these
// answer: the list (GET /api/devices, this browser's own entry marked), revoking one
// (DELETE /api/devices/<id>), and this browser's key, kept or forgotten. A failed request comes back
// as its sentence (report: describe.js words it, and the page reacts to what it means).

export class DevicesController {
  /**
   * @param {{api, session, report: (err, context?: string) => string, onForget: () => Promise<void>|void,
   *          onRevokedSelf: () => void, storageKept?: () => Promise<boolean|null>}} deps
   *   onForget       deletes this browser's key and shows the pairing form
   *   onRevokedSelf  this browser was revoked from here: the page stops using its key
   *   storageKept    does the browser promise to keep the key (null: it does not say)
   */
  constructor({ api, session, report, onForget, onRevokedSelf, storageKept = async () => null }) {
    Object.assign(this, { api, session, report, onForget, onRevokedSelf, storageKept });
  }

  /** This browser's device as the session keeps it ({deviceId, name, fingerprint, serverKey}), or null. */
  thisDevice() {
    return this.session.state.device || null;
  }

  /** {devices: [{device_id, name, fingerprint, status, last_seen_at, mine}]} (mine: this browser's), or {error: sentence}. */
  async list() {
    let answer;
    try {
      answer = (await this.api.listDevices()) || {};
    } catch (err) {
      return { error: this.report(err) };
    }
    const me = this.thisDevice();
    const devices = (answer.devices || []).map((d) => ({ ...d, mine: Boolean(me && d.device_id === me.deviceId) }));
    return { devices };
  }

  /**
   * Revokes a device: {revoked: true, mine} (mine: it was this browser, which the page then stops
   * using at once), or {error: sentence}.
   */
  async revoke(deviceId) {
    try {
      await this.api.revokeDevice(deviceId);
    } catch (err) {
      return { error: this.report(err) };
    }
    const me = this.thisDevice();
    const mine = Boolean(me && deviceId === me.deviceId);
    if (mine) this.onRevokedSelf();
    return { revoked: true, mine };
  }

  /** Deletes this browser's key: only ever on the owner's confirmed choice (no answer does it). */
  forget() {
    return this.onForget();
  }
}
