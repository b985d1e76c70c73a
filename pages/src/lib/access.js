// What the page knows about the Cloudflare Access session in front of the API, kept per API
// origin in localStorage so a reload remembers it: when the session ends (the backend names it,
// as the Access JWT's exp, on every answer that came through the tunnel) and when the owner last
// went to sign in. The API client uses it to tell "sign in" from "your computer is not reachable
// through the tunnel" when a failed fetch says nothing about its cause.

const ACCESS_EXPIRES_HEADER = "Privchat-Access-Expires";
const SIGN_IN_GRACE_MS = 5000;

function storageKey(origin, what) {
  return `privchat.${what}:${origin}`;
}

function readNumber(key) {
  try {
    const value = Number(globalThis.localStorage ? localStorage.getItem(key) : NaN);
    return Number.isFinite(value) ? value : 0;
  } catch {
    return 0; // storage blocked: nothing remembered
  }
}

function writeNumber(key, value) {
  try {
    if (globalThis.localStorage) localStorage.setItem(key, String(value));
  } catch {
    /* storage blocked: remembered for this page only */
  }
}

/** The owner opened Access's sign-in page for this API: a failure after that is not "sign in" again. */
export function noteSignInStarted(origin) {
  writeNumber(storageKey(origin, "signInStarted"), Date.now());
}

/** Opens the API in a new tab, where Cloudflare Access shows its sign-in page. */
export function openSignIn(origin, win = globalThis.window) {
  noteSignInStarted(origin);
  win.open(origin + "/api/health", "_blank", "noopener,noreferrer");
}

export class AccessSession {
  constructor(origin) {
    this.origin = origin;
    this.expiresMs = readNumber(storageKey(origin, "accessExpires"));
  }

  /** Remembers when the Access session ends, from an answer that came through the tunnel. */
  noteAnswer(res) {
    const seconds = Number(res.headers.get(ACCESS_EXPIRES_HEADER));
    if (Number.isFinite(seconds) && seconds > 0 && seconds * 1000 !== this.expiresMs) {
      this.expiresMs = seconds * 1000;
      writeNumber(storageKey(this.origin, "accessExpires"), this.expiresMs);
    }
  }

  /**
   * Is the session known to be alive, or has the owner just gone to sign in?
   * @param {number} serverNowMs  the server's time (the local clock corrected by offsetMs)
   * @param {number} offsetMs     server time minus local time
   */
  likelySignedIn(serverNowMs, offsetMs) {
    if (this.expiresMs > serverNowMs + SIGN_IN_GRACE_MS) return true;
    const started = readNumber(storageKey(this.origin, "signInStarted"));
    return started > 0 && started > this.expiresMs - offsetMs;
  }
}
