// The device key lives here: a non-extractable ECDSA CryptoKeyPair stored as a structured
// clone in IndexedDB (database "privchat", store "device"). The private key bytes can never
// be read by script, only used to sign.

import { KeyStorageError } from "./errors.js";

const DB_NAME = "privchat";
const DB_VERSION = 1;
const STORE = "device";
const DEVICE_KEY = "current";
const ORIGIN_KEY = "apiOrigin";

let dbPromise = null;

function openDb(idb = globalThis.indexedDB) {
  if (dbPromise) return dbPromise;
  dbPromise = new Promise((resolve, reject) => {
    if (!idb) {
      reject(new KeyStorageError(new Error("indexedDB is not available")));
      return;
    }
    let req;
    try {
      req = idb.open(DB_NAME, DB_VERSION);
    } catch (err) {
      reject(new KeyStorageError(err));
      return;
    }
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
    };
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => {
        db.close();
        dbPromise = null;
      };
      resolve(db);
    };
    req.onerror = () => reject(new KeyStorageError(req.error));
    req.onblocked = () => reject(new KeyStorageError(new Error("IndexedDB open was blocked by another tab")));
  });
  dbPromise.catch(() => {
    dbPromise = null;
  });
  return dbPromise;
}

async function tx(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    let result;
    let t;
    try {
      t = db.transaction(STORE, mode);
    } catch (err) {
      reject(new KeyStorageError(err));
      return;
    }
    const store = t.objectStore(STORE);
    let req;
    try {
      req = fn(store);
    } catch (err) {
      reject(new KeyStorageError(err));
      return;
    }
    if (req) req.onsuccess = () => (result = req.result);
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(new KeyStorageError(t.error));
    t.onabort = () => reject(new KeyStorageError(t.error));
  });
}

/** Throws KeyStorageError unless IndexedDB can store and read back a CryptoKey. */
export async function checkKeyStorage(testKey) {
  await tx("readwrite", (s) => s.put({ probe: true, key: testKey || null, at: Date.now() }, "probe"));
  const back = await tx("readonly", (s) => s.get("probe"));
  await tx("readwrite", (s) => s.delete("probe"));
  if (!back || !back.probe) throw new KeyStorageError(new Error("IndexedDB did not keep the probe record"));
}

/**
 * The stored device, or null when none:
 * {keyPair, deviceId, fingerprint, name, apiOrigin, createdAt, serverKey}
 *   serverKey  the pinned server key {kid, jwk, fingerprint} every request is sealed to (docs/E2E.md);
 *              absent on a device paired before end-to-end encryption
 */
export async function loadDevice() {
  const rec = await tx("readonly", (s) => s.get(DEVICE_KEY));
  if (!rec || !rec.keyPair || !rec.keyPair.privateKey || !rec.deviceId) return null;
  return rec;
}

export async function saveDevice({ keyPair, deviceId, fingerprint, name, apiOrigin, serverKey = null }) {
  const rec = { keyPair, deviceId, fingerprint, name, apiOrigin, serverKey, createdAt: new Date().toISOString() };
  await tx("readwrite", (s) => s.put(rec, DEVICE_KEY));
  if (apiOrigin) await tx("readwrite", (s) => s.put(apiOrigin, ORIGIN_KEY));
  return rec;
}

/** Pins another server key (a rotation the pinned key confirmed). Returns the updated record. */
export async function updateServerKey(serverKey) {
  const rec = await loadDevice();
  if (!rec) return null;
  rec.serverKey = serverKey;
  await tx("readwrite", (s) => s.put(rec, DEVICE_KEY));
  return rec;
}

/** Deletes the key pair, e.g. after the device was revoked, so it can pair again. */
export async function forgetDevice() {
  await tx("readwrite", (s) => s.delete(DEVICE_KEY));
}

export async function saveApiOrigin(origin) {
  await tx("readwrite", (s) => s.put(origin, ORIGIN_KEY));
}

export async function loadApiOrigin() {
  const v = await tx("readonly", (s) => s.get(ORIGIN_KEY));
  return typeof v === "string" ? v : null;
}

// A browser may delete a site's storage, the device key with it, when space runs low or the site
// goes unused (Safari after 7 days without a visit, unless the page was added to the home screen).
// Persistent storage asks it not to; the answer is the browser's .

/** Asks the browser to keep this site's storage (after pairing). true/false: its answer; null: it cannot say. */
export async function keepStorage(storage = globalThis.navigator && globalThis.navigator.storage) {
  try {
    return storage && typeof storage.persist === "function" ? Boolean(await storage.persist()) : null;
  } catch {
    return null;
  }
}

/** Whether the browser keeps this site's storage (true/false), or null when it does not say. */
export async function storageKept(storage = globalThis.navigator && globalThis.navigator.storage) {
  try {
    return storage && typeof storage.persisted === "function" ? Boolean(await storage.persisted()) : null;
  } catch {
    return null;
  }
}
