// Where the API lives. Sources, strongest first:
//   1. the pairing link fragment  #pair=<code>&api=<origin>&e2e=<kid>  (read once, then removed from
//      the address bar; e2e is the server key's thumbprint the page pins, docs/E2E.md)
//   2. the origin this device was paired with (IndexedDB, mirrored in localStorage)
//   3. chat/config.json next to the page (the tunnel setup script rewrites it for production)
// The page's CSP (connect-src) is the real limit on which origins can be reached at all.

const LS_KEY = "privchat.apiOrigin";
export const DEFAULT_API_ORIGIN = "http://127.0.0.1:8765";

/** Normalises "https://host[:port][/]" to an origin; returns null for anything else. */
export function normalizeOrigin(value) {
  if (typeof value !== "string" || !value.trim()) return null;
  let u;
  try {
    u = new URL(value.trim());
  } catch {
    return null;
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return null;
  if (u.username || u.password) return null;
  if ((u.pathname && u.pathname !== "/") || u.search || u.hash) return null;
  return u.origin;
}

export function isLoopbackOrigin(origin) {
  try {
    const h = new URL(origin).hostname;
    return h === "localhost" || h === "[::1]" || h === "::1" || /^127(?:\.\d{1,3}){3}$/.test(h);
  } catch {
    return false;
  }
}

/** A server key id as the link carries it (an RFC 7638 thumbprint, base64url), or null. */
export function normalizeKid(value) {
  return typeof value === "string" && /^[A-Za-z0-9_-]{43}$/.test(value.trim()) ? value.trim() : null;
}

/** Reads and strips the pairing fragment. Returns {code, api, e2e} (any may be null). */
export function takePairingFragment(loc = globalThis.location, hist = globalThis.history) {
  const hash = loc && loc.hash ? loc.hash.replace(/^#/, "") : "";
  if (!hash) return { code: null, api: null, e2e: null };
  const params = new URLSearchParams(hash);
  const code = params.get("pair");
  const api = params.get("api");
  const e2e = params.get("e2e");
  if (code === null && api === null && e2e === null) return { code: null, api: null, e2e: null };
  try {
    hist.replaceState(hist.state, "", loc.pathname + loc.search);
  } catch {
    /* replaceState can throw on odd origins; the fragment then just stays */
  }
  return { code: code ? code.trim() : null, api: normalizeOrigin(api || ""), e2e: normalizeKid(e2e) };
}

/** The API origin from chat/config.json (next to app.js), or null. */
export async function loadSiteConfig(configUrl = new URL("config.json", import.meta.url)) {
  try {
    const res = await fetch(configUrl, { cache: "no-cache", credentials: "same-origin" });
    if (!res.ok) return null;
    const cfg = await res.json();
    return normalizeOrigin(cfg && cfg.apiOrigin);
  } catch {
    return null;
  }
}

export function rememberOrigin(origin) {
  try {
    localStorage.setItem(LS_KEY, origin);
  } catch {
    /* storage off: IndexedDB keeps it with the device */
  }
}

export function rememberedOrigin() {
  try {
    return normalizeOrigin(localStorage.getItem(LS_KEY) || "");
  } catch {
    return null;
  }
}

/** Picks the API origin. `deviceOrigin` is the one stored with the paired device, if any. */
export async function resolveApiOrigin({ fragmentApi = null, deviceOrigin = null } = {}) {
  if (fragmentApi) return { origin: fragmentApi, source: "link" };
  if (deviceOrigin) return { origin: deviceOrigin, source: "device" };
  const siteOrigin = await loadSiteConfig();
  if (siteOrigin) return { origin: siteOrigin, source: "config" };
  const remembered = rememberedOrigin();
  if (remembered) return { origin: remembered, source: "remembered" };
  return { origin: DEFAULT_API_ORIGIN, source: "default" };
}
