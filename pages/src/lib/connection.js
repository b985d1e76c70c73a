// How the connection stands, as a pure state machine: what a check found (health, who-am-I, the
// last error) and what the machine remembers (the state shown, the backoff, whether the server was
// ever ready) go in; the status to show, its buttons and when to check again come out. No DOM, no
// fetch, no timers: ConnectionMonitor (app/monitor.js) runs the checks and the timers.
//
// A decision:
//   status     {state, text, note, actions}: what ConnectionStatus shows (describe.js words errors)
//   delayMs    when to check again; null: not until something happens (focus, online, a button)
//   countdown  true when delayMs is a retry: show the seconds left (see countdown())
//   memory     pass it back in with the next observation
//   effects    {input?: boolean}   the message box is usable or not
//              {pairing?: "unknown"}  show the pairing form: the server does not know this key
//                                     (said in a sealed answer: a plain one is never believed)
//              {ready?: true}      the server and this device are fine: history can load

import { ACTIONS, describe } from "./describe.js";
import { isLoopbackOrigin } from "./config.js";

export const POLL_OK_MS = 15_000;
export const POLL_LOADING_MS = 3_000;
export const BACKOFF_MIN_MS = 1_000;
export const BACKOFF_MAX_MS = 30_000;
// A server on this machine (a loopback API origin) restarts in a second or two and costs nothing to
// ask: the page notices it is back within 2 s. A tunnelled origin keeps the 30 s cap.
export const BACKOFF_LOOPBACK_MAX_MS = 1_500;

/** The longest wait between two checks of a failing server at `apiOrigin`. */
export function backoffCap(apiOrigin = "") {
  return apiOrigin && isLoopbackOrigin(apiOrigin) ? BACKOFF_LOOPBACK_MAX_MS : BACKOFF_MAX_MS;
}

/** What the machine remembers before the first check. */
export const START = Object.freeze({ state: "connecting", backoffMs: 0, wasReady: false });

export const STEADY = ["ready", "loading", "model_error"];

function status(state, text, actions = []) {
  return { state, text, note: "", actions };
}

function wait(memory, shown, delayMs, effects = {}) {
  return { status: shown, delayMs, countdown: false, memory: { ...memory, state: shown.state }, effects };
}

/**
 * The next retry: exponential backoff from 1 s to `maxMs` (30 s; 1.5 s on loopback); a Retry-After
 * (seconds) sets the step: the server answered and asked for that wait, so it is kept up to 30 s.
 */
export function nextBackoff(backoffMs, retryAfter = null, maxMs = BACKOFF_MAX_MS) {
  if (retryAfter) return Math.min(retryAfter * 1000, BACKOFF_MAX_MS);
  return backoffMs ? Math.min(backoffMs * 2, maxMs) : Math.min(BACKOFF_MIN_MS, maxMs);
}

function retry(memory, shown, retryAfter = null, apiOrigin = "") {
  const backoffMs = nextBackoff(memory.backoffMs, retryAfter, backoffCap(apiOrigin));
  return { status: shown, delayMs: backoffMs, countdown: true, memory: { ...memory, backoffMs, state: shown.state }, effects: {} };
}

/** What to show while a check runs: "Connecting…" until the first answer, else nothing new. */
export function checking(memory) {
  return memory.state === "connecting" ? status("connecting", "Connecting…") : null;
}

/** The browser says it is offline: no timer, the "online" event brings the next check. */
export function offline(memory) {
  return wait(memory, status("offline", "Browser offline"), null);
}

/** This device was revoked: nothing works until it is paired again. */
export function revoked(memory) {
  return wait(memory, status("revoked", "Device revoked", [ACTIONS.repair]), null, { input: false });
}

/** The owner asked for a check now (a Retry button): the backoff starts over. */
export function retryNow(memory) {
  return { ...memory, backoffMs: 0 };
}

/**
 * The owner pressed Send (or Retry on a message): any backoff starts over, and unless the server was
 * fine at the last check, the page checks at once instead of waiting for the next retry.
 */
export function afterSend(memory) {
  return { memory: retryNow(memory), check: memory.state !== "ready" };
}

/** A request failed: the status that says why, and when to try again. */
export function failed(memory, error, { apiOrigin = "" } = {}) {
  const d = describe(error, { context: "status", apiOrigin });
  const shown = status(d.state, d.text, d.actions);
  switch (d.state) {
    case "offline":
      return offline(memory);
    case "access":
      return retry(memory, shown, null, apiOrigin);
    case "revoked":
      return revoked(memory);
    case "unpaired":
      return wait(memory, shown, POLL_OK_MS, { pairing: "unknown" });
    case "untrusted":
      // The pinned server key is gone (or was never pinned): nothing can be sealed until pairing again.
      return wait(memory, shown, null, { input: false });
    case "outdated":
      // The server speaks a newer end-to-end version than this copy of the page: asking again
      // cannot help, only a reload (the Reload page button) fetches a page that speaks it.
      return wait(memory, shown, null, { input: false });
    case "csp":
      // This page's own policy blocks the API origin: asking again cannot help, only a page whose
      // policy allows it (rebuilt, reloaded). A focus or the Reload button checks again.
      return wait(memory, shown, null);
    case "unsealed":
      // An answer without the seal: not the server's word, so nothing about this device changes.
      // Its sentence stays in view (not the first-blip "Reconnecting…") and the check is repeated.
      return retry(memory, shown, null, apiOrigin);
    default:
      break;
  }
  // A first blip after things were fine: "reconnecting"; if it persists, say why.
  if (memory.wasReady && STEADY.includes(memory.state)) {
    return retry(memory, status("reconnecting", "Reconnecting…", [ACTIONS.retryNow]), null, apiOrigin);
  }
  return retry(memory, shown, d.retryAfter, apiOrigin);
}

/**
 * The status for a health answer from a server that knows this device. It names the model this
 * browser's replies go to (`chosen`: the picker's entry of the signed GET /api/models answer) once
 * that list is known; health is read unsigned and names only the model the config starts with,
 * which is not the one used when the owner picked another or set another default.
 */
function fromHealth(health, chosen = null) {
  const model = chosen && chosen.name ? chosen : (health && health.model) || {};
  const name = model.label || model.name || "model";
  switch (model.state) {
    case "loading":
      return [status("loading", chosen ? `Loading ${name}…` : "Model loading…"), POLL_LOADING_MS];
    case "error":
    case "unreachable":
      return [status("model_error", `Model failed: ${model.error || (model.state === "unreachable" ? `${name} does not answer` : "the server gave no reason")}`, [ACTIONS.retryNow]), POLL_OK_MS];
    case "disabled":
      return [status("model_error", `Model failed: ${model.error || "no model is configured on the server"}`, [ACTIONS.retryNow]), POLL_OK_MS];
    default: // ready; "unloaded" too: a model of the list not in memory yet loads with the first message
      return [status("ready", `Ready — ${name}`), POLL_OK_MS];
  }
}

/**
 * One check's outcome.
 * @param {{state: string, backoffMs: number, wasReady: boolean}} memory
 * @param {{offline?: boolean, health?: object, me?: object, error?: unknown,
 *          pairing?: string|null, apiOrigin?: string, model?: object|null}} seen
 *   health   the /api/health answer (absent when that request failed)
 *   me       the who-am-I answer (absent when not asked: no device, or the pairing form is shown)
 *   error    the error of the request that failed (health, or who-am-I after a good health)
 *   pairing  the pairing form's reason when it is shown ("first", "revoked", …), else null
 *   model    the chosen model's entry of GET /api/models ({name, label, state, error}), when known
 */
export function decide(memory, { offline: isOffline = false, health, me, error, pairing = null, apiOrigin = "", model = null } = {}) {
  if (isOffline) return offline(memory);
  if (error !== undefined && health === undefined) return failed(memory, error, { apiOrigin });
  const answered = { ...memory, backoffMs: 0 };
  if (pairing) {
    // The server answers; this browser has no device yet.
    const shown = pairing === "revoked" ? status("revoked", "Device revoked") : status("unpaired", "Device not paired");
    return wait(answered, shown, POLL_OK_MS);
  }
  if (error !== undefined) return failed(memory, error, { apiOrigin });
  if (me && me.status === "revoked") return revoked(memory);
  const [shown, pollMs] = fromHealth(health, model);
  // A model loading on this machine: ask again sooner, so the page is ready when the model is.
  const delayMs = shown.state === "loading" ? Math.min(pollMs, backoffCap(apiOrigin)) : pollMs;
  return wait({ ...answered, wasReady: true }, shown, delayMs, { input: true, ready: true });
}

/**
 * A request elsewhere on the page failed (history, settings, devices, sending): does the page
 * change? A decision when the failure is about this device or Access; "recheck" when the
 * connection may be gone; null when the failure is the request's own.
 */
export function afterRequestError(memory, error, { apiOrigin = "" } = {}) {
  const { effect } = describe(error, { apiOrigin });
  if (effect === "recheck") return "recheck";
  if (["revoked", "unknown", "access", "untrusted", "outdated"].includes(effect)) return failed(memory, error, { apiOrigin });
  return null;
}

/** The status to show `seconds` before a retry: the countdown replaces "Reconnecting…", else it is a note. */
export function countdown(shown, seconds) {
  if (shown.state === "reconnecting") return { ...shown, text: `Reconnecting in ${seconds}s…`, note: "" };
  return { ...shown, note: `Retrying in ${seconds}s…` };
}
