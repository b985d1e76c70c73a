// The session store: what this tab is doing with the server, in one place. Components and the
// page's actions read it and subscribe to the fields they show; nothing else keeps a copy (the
// device in particular lives only here).
//
//   device          the paired device {keyPair, deviceId, fingerprint, name, apiOrigin, serverKey} or
//                   null; serverKey is the pinned server key {kid, jwk, fingerprint} (docs/E2E.md),
//                   kept with the device in IndexedDB (keystore.js) and re-pinned on a confirmed rotation
//   apiOrigin       where the API is, e.g. "http://127.0.0.1:8765"
//   view            "loading" | "pairing" | "chat": which screen is shown
//   pairReason      why the pairing form is shown ("first", "revoked", "unknown", "storage",
//                   "new_server", "untrusted"), null when it is not
//   conversationId  the open conversation, null for a new one
//   stream          while a reply is being streamed, this tab's connection to it {serial, ctrl, …}
//                   (app/chat.js), else null; the reply itself is the reply store's (lib/reply-store.js)
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

// ---------------------------------------------------------------------------------------------
// What outlives the tab (a reload, a crash, a new tab), kept in localStorage per API origin:
//   privchat.open.<origin>    the id of the conversation that was open ("" or absent: a new one)
//   privchat.drafts.<origin>  {conversationId or "": text} the unsent text of the message box
//   privchat.unsent.<origin>  [{id, conversationId, text, at, after?}] messages that could not be sent
//                             (after: the id of the message each followed, null for the first: where it is shown)
// No key, no content the server does not already have except what the owner typed. Storage that
// is off or full only loses this memory; the page works the same.

const NEW = "";
const MAX_DRAFTS = 50;

function browserStorage() {
  try {
    return globalThis.localStorage || null;
  } catch {
    return null; // storage blocked (a sandboxed frame, some privacy modes)
  }
}

export class PageMemory {
  /** @param {Storage|null} [storage]  localStorage by default (tests pass their own) */
  constructor(storage = browserStorage()) {
    this.storage = storage;
  }

  read(name, origin, fallback) {
    try {
      const raw = this.storage && this.storage.getItem(`privchat.${name}.${origin}`);
      return raw === null || raw === undefined ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  }

  write(name, origin, value) {
    try {
      if (!this.storage) return;
      const key = `privchat.${name}.${origin}`;
      if (value === null) this.storage.removeItem(key);
      else this.storage.setItem(key, JSON.stringify(value));
    } catch {
      /* full or blocked: this memory is lost, nothing else */
    }
  }

  /**
   * Everything kept for this API: the open conversation, drafts and unsent messages. Forgetting the
   * device (or finding it revoked) clears it, so no typed text stays behind in the browser.
   */
  forget(origin) {
    for (const name of ["open", "drafts", "unsent"]) this.write(name, origin, null);
  }

  /** The conversation open last with this API, or null (a new conversation). */
  openConversation(origin) {
    const id = this.read("open", origin, null);
    return typeof id === "string" && id ? id : null;
  }

  setOpenConversation(origin, id) {
    this.write("open", origin, id || null);
  }

  drafts(origin) {
    const all = this.read("drafts", origin, {});
    return all && typeof all === "object" && !Array.isArray(all) ? all : {};
  }

  /** The unsent text of the message box in a conversation (null: a new conversation). */
  draft(origin, conversationId) {
    const text = this.drafts(origin)[conversationId || NEW];
    return typeof text === "string" ? text : "";
  }

  setDraft(origin, conversationId, text) {
    const all = this.drafts(origin);
    const key = conversationId || NEW;
    delete all[key];
    if (text) all[key] = text; // newest last; the oldest drafts go first when there are too many
    const keys = Object.keys(all);
    for (const old of keys.slice(0, Math.max(0, keys.length - MAX_DRAFTS))) delete all[old];
    this.write("drafts", origin, Object.keys(all).length ? all : null);
  }

  /** A new conversation got its id (its first message was sent): its draft goes with it. */
  moveDraft(origin, fromId, toId) {
    const text = this.draft(origin, fromId);
    this.setDraft(origin, fromId, "");
    if (text) this.setDraft(origin, toId, text);
  }

  /** Messages that could not be sent, of one conversation (undefined: of all). */
  unsent(origin, conversationId) {
    const list = this.read("unsent", origin, []);
    const valid = Array.isArray(list) ? list.filter((m) => m && typeof m.id === "string" && typeof m.text === "string") : [];
    if (conversationId === undefined) return valid;
    return valid.filter((m) => (m.conversationId || null) === (conversationId || null));
  }

  /**
   * Keeps a message that could not be sent; returns its local id. `after`: the id of the message it
   * followed (null: it was the first); left out, it is shown at the end.
   */
  keepUnsent(origin, conversationId, text, now = Date.now(), after = undefined) {
    const id = `unsent-${now.toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const kept = { id, conversationId: conversationId || null, text, at: now, ...(after !== undefined ? { after } : {}) };
    this.write("unsent", origin, [...this.unsent(origin), kept]);
    return id;
  }

  dropUnsent(origin, id) {
    const rest = this.unsent(origin).filter((m) => m.id !== id);
    this.write("unsent", origin, rest.length ? rest : null);
  }

  /** A conversation is gone: its unsent messages move to the new conversation. */
  moveUnsent(origin, fromId, toId) {
    const list = this.unsent(origin).map((m) => ((m.conversationId || null) === (fromId || null) ? { ...m, conversationId: toId || null } : m));
    this.write("unsent", origin, list.length ? list : null);
  }
}
