// The session store: what this tab is doing with the server, in one place. Components and the
// page's actions read it and subscribe to the fields they show; nothing else keeps a copy (the
// device in particular lives only here).
//
//   device          the paired device {keyPair, deviceId, fingerprint, name, apiOrigin} or null
//   apiOrigin       where the API is, e.g. "http://127.0.0.1:8765"
//   view            "loading" | "pairing" | "chat": which screen is shown
//   pairReason      why the pairing form is shown ("first", "revoked", "unknown", "storage",
//                   "new_server"), null when it is not
//   conversationId  the open conversation, null for a new one
//   stream          the reply being streamed {ctrl, assistantId, started, stopped} or null
//   nextBefore      the history paging cursor: older conversations exist before it (null: none)

export const FIELDS = ["device", "apiOrigin", "view", "pairReason", "conversationId", "stream", "nextBefore"];

const EMPTY = {
  device: null,
  apiOrigin: null,
  view: "loading",
  pairReason: null,
  conversationId: null,
  stream: null,
  nextBefore: null,
};

export class Session {
  constructor(initial = {}) {
    this.check(initial);
    this.state = Object.freeze({ ...EMPTY, ...initial });
    this.listeners = new Set();
  }

  check(patch) {
    for (const key of Object.keys(patch)) {
      if (!FIELDS.includes(key)) throw new Error(`the session has no field ${key}`);
    }
  }

  /** Changes some fields; listeners of a changed field hear about it once, after all are set. */
  set(patch) {
    this.check(patch);
    const changed = Object.keys(patch).filter((k) => !Object.is(patch[k], this.state[k]));
    if (!changed.length) return;
    this.state = Object.freeze({ ...this.state, ...patch });
    for (const l of [...this.listeners]) {
      if (!l.keys || l.keys.some((k) => changed.includes(k))) l.fn(this.state, changed);
    }
  }

  /**
   * Calls fn(state, changedKeys) whenever one of `keys` changes (every change when keys is null).
   * Returns a function that unsubscribes.
   */
  subscribe(keys, fn) {
    if (keys) this.check(Object.fromEntries(keys.map((k) => [k, null])));
    const listener = { keys, fn };
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
