// Every sentence the owner reads about a failure, in one place: describe(error, context) turns an
// ApiError code, a NetworkError kind, a KeyStorageError or a StreamError into what the page says
// and which buttons go with it. Pure: no DOM, no fetch; the caller shows the result and acts on
// its `effect`.
//
// Contexts (where the sentence is shown):
//   "status"    the connection status in the top bar: also the status `state` (connection.js
//               decides when to check again)
//   "pairing"   under the pairing form
//   "send"      on a message that did not reach the model (pass `stopped` when the owner stopped it)
//   "settings"  the settings dialog ("Not saved: …" for a refused value)
//   "import"    the sidebar, after an import (a file that is not JSON)
//   "inline"    anywhere else a request failed (sidebar, devices dialog): the default
//
// Result: {text, actions, state?, effect?, retryAfter?}
//   actions  buttons: {id, label, run} with run one of "retry", "signin", "repair"
//   effect   what the failure means for the whole page: "revoked" (this device was revoked),
//            "unknown" (the server does not know this key), "access" (Access wants a sign-in),
//            "recheck" (the connection may be gone: check it now), or null

import { ApiError, KeyStorageError, NetworkError, StreamError } from "./errors.js";
import { isLoopbackOrigin } from "./config.js";

export const ACTIONS = Object.freeze({
  retryNow: { id: "status-retry", label: "Retry now", run: "retry" },
  retry: { id: "status-retry", label: "Retry", run: "retry" },
  signIn: { id: "access-signin", label: "Sign in (new tab)", run: "signin" },
  signInAgain: { id: "tunnel-signin", label: "Sign in again (new tab)", run: "signin" },
  repair: { id: "status-repair", label: "Pair again", run: "repair" },
  pairSignIn: { id: "pair-signin", label: "Sign in (new tab)", run: "signin" },
  pairRetry: { id: "pair-retry", label: "Retry", run: "retry" },
});

export const KEY_STORAGE_TEXT = "This browser cannot keep a device key (private browsing?) — open /chat in a normal window";

const isNetwork = (err, kind) => err instanceof NetworkError && err.kind === kind;
const isCode = (err, code) => err instanceof ApiError && err.code === code;
const isAccess = (err) => isNetwork(err, "access") || isCode(err, "access_denied");

function result(text, { actions = [], ...rest } = {}) {
  return { text, actions, effect: null, ...rest };
}

/** @param {unknown} err @param {{context?: string, apiOrigin?: string, stopped?: boolean}} ctx */
export function describe(err, { context = "inline", apiOrigin = "", stopped = false } = {}) {
  const origin = apiOrigin || (err && err.origin) || "";
  switch (context) {
    case "status":
      return forStatus(err, origin);
    case "pairing":
      return forPairing(err, origin);
    case "send":
      if (stopped || isNetwork(err, "aborted")) return result("Stopped before the server answered.");
      return inline(err, origin);
    case "settings":
      if (isCode(err, "validation_error")) return result(`Not saved: ${err.message}`);
      return inline(err, origin);
    case "import":
      if (err instanceof SyntaxError) return result("That file is not a privchat JSON export.");
      return inline(err, origin);
    default:
      return inline(err, origin);
  }
}

/** The connection status: a state of ConnectionStatus, its sentence and buttons. */
function forStatus(err, origin) {
  if (isNetwork(err, "offline")) return result("Browser offline", { state: "offline" });
  if (isAccess(err)) {
    return result("Cloudflare Access sign-in needed", { state: "access", actions: [ACTIONS.signIn, ACTIONS.retry] });
  }
  if (isCode(err, "device_revoked")) return result("Device revoked", { state: "revoked", actions: [ACTIONS.repair] });
  if (isCode(err, "device_unknown")) return result("Device not paired", { state: "unpaired" });
  if (err instanceof ApiError) {
    // The server answered, but not well (5xx, 429, 503 without a model state…).
    return result(`Reconnecting… (${err.message})`, { state: "reconnecting", actions: [ACTIONS.retryNow], retryAfter: err.retryAfter });
  }
  if (isLoopbackOrigin(origin)) {
    return result("Server not reachable — start it with `privchat serve`", { state: "unreachable", actions: [ACTIONS.retryNow] });
  }
  if (isNetwork(err, "tunnel")) {
    // Cloudflare answered, privchat did not. The sign-in stays at hand: an unfinished sign-in looks the same.
    return result("Your computer is not reachable through the tunnel: is it awake, with privchat and cloudflared running?", {
      state: "tunnel",
      actions: [ACTIONS.retryNow, ACTIONS.signInAgain],
    });
  }
  return result("The API could not be reached: check the network connection", { state: "unreachable", actions: [ACTIONS.retryNow] });
}

/** Under the pairing form: every sentence ends with what to do next. */
function forPairing(err, origin) {
  if (err instanceof KeyStorageError) return result(KEY_STORAGE_TEXT);
  const signIn = { actions: [ACTIONS.pairSignIn, ACTIONS.pairRetry] };
  if (err instanceof NetworkError) {
    if (err.kind === "offline") return result("This browser is offline. Connect to the network and try again.");
    if (err.kind === "access") return result("Cloudflare Access sign-in needed: sign in to the API in a new tab (button above), then try again.", signIn);
    if (err.kind === "tunnel") {
      return result("Your computer is not reachable through the tunnel: Cloudflare answered, but privchat did not. Check that the computer is awake and privchat and cloudflared are running, then try again.");
    }
    return result(isLoopbackOrigin(origin)
      ? `The privchat server at ${origin} is not reachable — start it with \`privchat serve\`, then try again.`
      : `The API at ${origin} could not be reached: check the network connection, then try again.`);
  }
  if (err instanceof ApiError) {
    switch (err.code) {
      case "pairing_invalid":
        return result("That pairing code is not valid. Check it for typos, or run `privchat pair` again for a new one.");
      case "pairing_used":
        return result("That pairing code was already used: each code pairs one device. Run `privchat pair` on your computer for a new one.");
      case "pairing_expired":
        return result("That pairing code has expired. Run `privchat pair` on your computer for a new one.");
      case "pairing_locked":
        return result("Too many wrong codes: pairing is locked for now. Wait a few minutes, then run `privchat pair` for a new code.");
      case "rate_limited":
        return result(`Too many attempts. Wait${err.retryAfter ? ` ${err.retryAfter} s` : " a moment"} and try again.`);
      case "access_denied":
        return result("Cloudflare Access refused the request: sign in to the API in a new tab, then try again.", signIn);
      default:
        return result(err.message);
    }
  }
  return result(`Pairing failed: ${err && err.message ? err.message : err}`);
}

/** The network sentences shown next to a failed request. */
function networkText(err, origin) {
  switch (err.kind) {
    case "offline":
      return "The browser is offline.";
    case "access":
      return "Cloudflare Access sign-in needed.";
    case "tunnel":
      return "Your computer is not reachable through the tunnel: it may be asleep or off, or privchat or cloudflared is not running.";
    case "aborted":
      return "The request was stopped.";
    case "interrupted":
      return "The connection closed before the reply was finished.";
    default:
      return isLoopbackOrigin(origin)
        ? "Server not reachable — start it with `privchat serve`."
        : `The API at ${origin} could not be reached: check the network connection.`;
  }
}

function inline(err, origin) {
  if (err instanceof ApiError) {
    switch (err.code) {
      case "device_revoked":
        return result("This device was revoked. Pair it again to continue.", { effect: "revoked" });
      case "device_unknown":
        return result("This device is not paired with the server.", { effect: "unknown" });
      case "access_denied":
        return result("Cloudflare Access sign-in needed: sign in in a new tab, then retry.", { effect: "access" });
      case "rate_limited":
      case "queue_full":
        return result(`${err.message}${err.retryAfter ? ` Try again in ${err.retryAfter} s.` : ""}`);
      case "clock_skew":
        return result("This device's clock is too far off and could not be corrected. Check the system time.");
      default:
        return result(err.message);
    }
  }
  if (err instanceof NetworkError) return result(networkText(err, origin), { effect: err.kind === "aborted" ? null : "recheck" });
  if (err instanceof KeyStorageError) return result(KEY_STORAGE_TEXT);
  if (err instanceof StreamError) return result(`The model stopped with an error: ${err.message || "no reason given"}`);
  return result(String(err && err.message ? err.message : err));
}
