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
//   "voice"     under the composer, after the microphone button (recording or transcribing failed)
//   "attach"    on a file's chip under the composer, when it could not be attached
//   "inline"    anywhere else a request failed (sidebar, devices dialog): the default
//
// Result: {text, actions, state?, effect?, retryAfter?}
//   actions  buttons: {id, label, run} with run one of "retry", "signin", "repair", "repair_key", "reload"
//   effect   what the failure means for the whole page: "revoked" (this device was revoked),
//            "unknown" (the server does not know this key), "access" (Access wants a sign-in),
//            "untrusted" (the pinned server key is gone or missing: pair again),
//            "outdated" (this copy of the page is older than the server speaks: reload it),
//            "recheck" (the connection may be gone: check it now), or null
//
// Only sealed answers are believed (docs/E2E.md): a refusal that came without the seal is the
// E2EError e2e_unsealed_refusal, whatever code its plain body named, and has no effect and no
// button but Retry: it never deletes the device key or opens the pairing form, and its words are
// never shown. An ApiError here is a sealed answer (or one of the harmless plain refusals
// e2e_version_old and clock_skew), so its code is acted on and its sentence may be shown.

import { ApiError, E2EError, KeyStorageError, NetworkError, PageLoadError, StreamError } from "./errors.js";
import { isLoopbackOrigin } from "./config.js";

export const ACTIONS = Object.freeze({
  retryNow: { id: "status-retry", label: "Retry now", run: "retry" },
  retry: { id: "status-retry", label: "Retry", run: "retry" },
  signIn: { id: "access-signin", label: "Sign in (new tab)", run: "signin" },
  signInAgain: { id: "tunnel-signin", label: "Sign in again (new tab)", run: "signin" },
  repair: { id: "status-repair", label: "Pair again", run: "repair" },
  repairKey: { id: "status-repair", label: "Pair again", run: "repair_key" },
  reload: { id: "status-reload", label: "Reload page", run: "reload" },
  pairSignIn: { id: "pair-signin", label: "Sign in (new tab)", run: "signin" },
  pairRetry: { id: "pair-retry", label: "Retry", run: "retry" },
});

export const KEY_STORAGE_TEXT = "This browser cannot keep a device key (private browsing?) — open /chat in a normal window";

// A model's state as the picker shows it beside its name (GET /api/models).
const MODEL_STATE_TEXT = {
  ready: "",
  loading: "loading…",
  unloaded: "loads when used",
  unreachable: "not answering",
  error: "failed",
  disabled: "turned off",
};

/** The picker's line for a model: its label or name, and its state when that is not "ready". */
export function modelOptionText(model) {
  const name = (model && (model.label || model.name)) || "?";
  const state = model && Object.hasOwn(MODEL_STATE_TEXT, model.state) ? MODEL_STATE_TEXT[model.state] : model && model.state;
  return state ? `${name} — ${state}` : name;
}

// What the page says while the server cannot be used, by connection state (ConnectionStatus's
// STATES): on a message that was not sent, instead of the conversations, and under the
// message box. `statusText` is the status pill's sentence, the reason for states it words best.
const CANNOT_SEND = ["revoked", "untrusted", "unpaired", "outdated"];
const CAN_SEND = ["ready", "loading", "model_error"];

/** Why the server cannot be used now, as the end of a sentence ("…: <reason>"); null when it can. */
export function waitingReason(state, statusText = "") {
  if (!state || CAN_SEND.includes(state) || state === "connecting") return null;
  if (state === "offline") return "this browser is offline.";
  if (state === "reconnecting") return "the server does not answer; the page keeps trying.";
  if (state === "revoked") return "this device was revoked.";
  if (state === "access") return "Cloudflare Access sign-in needed (Sign in, above).";
  const text = String(statusText || "the server does not answer").replace(/[.…]*$/, "");
  // The pill's sentence starts one of its own; here it ends another ("…: server not reachable").
  return `${/^[A-Z][a-z]/.test(text) ? text.charAt(0).toLowerCase() + text.slice(1) : text}.`;
}

/**
 * The note on a message kept unsent, for the connection as it is now: {text, canSend}. canSend:
 * Send now can work (the server answers and this device may use it); Discard is always offered.
 */
export function unsentNote(state, statusText = "") {
  if (CANNOT_SEND.includes(state)) {
    const why = state === "revoked" ? "this device was revoked, so it cannot send" : waitingReason(state, statusText).replace(/\.$/, "");
    return { text: `Not sent: ${why}. Pair this browser again to keep chatting; Discard removes this message.`, canSend: false };
  }
  const reason = waitingReason(state, statusText);
  if (reason) return { text: `Not sent yet: ${reason} It is kept in this browser; Send now appears when the server is back.`, canSend: false };
  if (state === "connecting") return { text: "Not sent yet: checking the connection…", canSend: false };
  return { text: "Not sent: the server did not get this message. The connection is back: Send now sends it.", canSend: true };
}

/**
 * Until the conversation list has loaded once: {list, title, text} for the sidebar (in place of "No
 * conversations yet.") and the empty conversation (in place of the invitation; null title: keep it).
 */
export function notLoaded(state, statusText = "") {
  const reason = waitingReason(state, statusText);
  return reason ? cannotLoad(reason) : { list: "Loading your conversations…", title: null, text: null };
}

/** The list could not load: `reason` ends a sentence (waitingReason, or a failed request's describe()). */
export function cannotLoad(reason) {
  const because = String(reason);
  return {
    list: `Can't load your conversations yet: ${because}`,
    title: "Can't load your conversations yet",
    text: `${because.charAt(0).toUpperCase()}${because.slice(1)} Nothing is lost: your history is on your computer and shows here once the server answers.`,
  };
}

/** Under the message box while the server cannot be used: what happens to a message sent now (null: nothing to say). */
export function composerNote(state, statusText = "") {
  if (CANNOT_SEND.includes(state)) return null; // the box is off, and the status says why
  const reason = waitingReason(state, statusText);
  return reason ? `Not connected: ${reason} A message you send now is kept in this browser, to send when the server is back.` : null;
}

/** Whether this browser keeps its storage (navigator.storage.persisted()): the Devices dialog's line. */
export function storageKeptText(kept) {
  if (kept === true) return "This browser keeps this site's storage, so the device key stays until you forget it.";
  if (kept === false) {
    return "This browser may delete this site's storage (and with it the device key) when space runs low or the site is not used for a while. To keep it, add the page to your home screen or install it as an app; otherwise you may have to pair again.";
  }
  return "This browser does not say whether it keeps this site's storage.";
}

const isNetwork = (err, kind) => err instanceof NetworkError && err.kind === kind;
const isCode = (err, code) => err instanceof ApiError && err.code === code;
const isAccess = (err) => isNetwork(err, "access") || isCode(err, "access_denied");
// A revocation is believed from a sealed answer, or from a reply stream's sealed final error event
// (docs/E2E.md: a revoked device's open stream ends with one).
const isRevoked = (err) => isCode(err, "device_revoked") || (err instanceof StreamError && err.code === "device_revoked");

// End-to-end encryption (docs/E2E.md): the page's own findings (E2EError) and the server's refusals
// (ApiError) share their codes' sentences.
const E2E_TEXT = {
  e2e_key_mismatch:
    "The server's encryption key is not the one this browser trusts, so nothing was sent: something between this browser and your computer may be in the way. Run `privchat pair` on your computer and compare the server key fingerprint it shows.",
  e2e_key_unpinned: "This browser has no server encryption key to trust (it was paired before end-to-end encryption). Pair it again.",
  e2e_key_unknown: "The server no longer accepts the encryption key this browser trusts (it was replaced with `privchat e2e rotate` too long ago). Pair this browser again.",
  e2e_unsealed: "An answer came without its end-to-end seal and was not shown: something between this browser and your computer may have changed it.",
  e2e_response_invalid: "An answer's end-to-end seal did not open, so it was not shown: something between this browser and your computer may have changed it.",
  e2e_event_invalid: "Part of the reply did not open (missing, out of order, repeated or changed on the way), so the rest was not shown.",
  e2e_truncated: "The reply stream ended before its last part arrived: the reply is incomplete.",
  e2e_required: "The server refused a request that was not end-to-end encrypted.",
  e2e_malformed: "The server could not read this request's encryption header.",
  e2e_open_failed: "The server could not open this request: it was changed on the way, or sealed to another key.",
  e2e_version_old: "This page is an older version than your server speaks, so the server refused its request. Reload the page to get the current one.",
  e2e_status_mismatch: "An answer's status was changed on the way, so it was not believed.",
  e2e_key_retired: "Your server's encryption key was replaced while this request was on its way, so it was not sent again. Retry.",
  e2e_unsealed_refusal:
    "An answer came back that privchat did not seal, so it was not believed. Retry; if it keeps happening, something between this browser and your computer is changing traffic.",
};
// A plain e2e_key_unknown may be true (the owner dropped the key this browser trusts) or forged:
// the page cannot tell, so it says how the owner can act on it, and does nothing itself.
const UNSEALED_KEY_UNKNOWN =
  " If you replaced the server key with `privchat e2e rotate --revoke-old`, or replaced it long ago, this browser's key can no longer be used: then forget it under Devices (“Forget this browser's key”) and pair this browser again. Nothing was deleted.";
// Answers something on the way made or changed: the status says so as it is, and offers Retry.
const NOT_THE_SERVERS_WORD = ["e2e_unsealed_refusal", "e2e_status_mismatch", "e2e_response_invalid", "e2e_unsealed"];
// Pairing again deletes this browser's key: only for the page's own findings and sealed answers.
const PAIR_AGAIN = ["e2e_key_unpinned"];
const e2eCode = (err) =>
  (err instanceof E2EError || err instanceof ApiError) && err.code && Object.hasOwn(E2E_TEXT, err.code) ? err.code : null;

function result(text, { actions = [], ...rest } = {}) {
  return { text, actions, effect: null, ...rest };
}

/** An end-to-end code's sentence; an unsealed refusal's unproven hint adds what the owner may do. */
function e2eText(err, code, context = "inline") {
  const more = code === "e2e_unsealed_refusal" && err.hint === "e2e_key_unknown" && context !== "pairing" ? UNSEALED_KEY_UNKNOWN : "";
  return E2E_TEXT[code] + more;
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
      // A value the server bounds itself (max_tokens by the model's context): its sentence names the bound.
      if (settingsField(err)) return result(err.message, { field: settingsField(err) });
      return inline(err, origin);
    case "import":
      if (err instanceof SyntaxError) return result("That file is not a privchat JSON export.");
      return inline(err, origin);
    case "voice":
      return forVoice(err, origin);
    case "attach":
      return forAttach(err, origin);
    default:
      return inline(err, origin);
  }
}

const number = (n) => Number(n).toLocaleString("en-US");

/**
 * Before sending (app/fit.js): the message is longer than the model reads. `count` is POST
 * /api/tokens' answer: {tokens, n_ctx, room, exact}.
 */
export function tooLongText({ tokens, n_ctx: nCtx, room, exact }, model = "the model") {
  const size = `${exact ? "" : "about "}${number(tokens)} tokens`;
  const context = Number.isInteger(nCtx) ? ` (its context is ${number(nCtx)} tokens, and part of it is kept for the reply)` : "";
  return `This message is ${size}, longer than ${model} can read: at most ${number(room)}${context}. If you send it, the start of it is cut and the model reads only the end. Shorten it, or press Send again to send it anyway.`;
}

/**
 * Under a reply whose prompt did not hold everything (the done event's message_cut and
 * dropped_messages): what the model did not read.
 */
export function contextNotes({ message_cut: cut, dropped_messages: dropped } = {}) {
  if (cut) {
    const earlier = Number.isInteger(dropped) && dropped > 0 ? " (and none of the earlier messages)" : "";
    return [`Your message was longer than the model can read: the start of it was cut, so the model read only its end${earlier}.`];
  }
  if (Number.isInteger(dropped) && dropped > 0) {
    return [`The model did not read the ${dropped === 1 ? "earliest message" : `${dropped} earliest messages`} of this conversation: they did not fit in its context.`];
  }
  return [];
}

/** The setting a settings refusal is about ("max_tokens"), so the dialog marks that field; else null. */
export function settingsField(err) {
  return isCode(err, "max_tokens_too_large") || isCode(err, "max_tokens_too_small") ? "max_tokens" : null;
}

/**
 * This page's own CSP does not let it reach `origin`: the server may well be running. The policy
 * comes from pages/_headers (`privchat tunnel setup` writes the API origin there; `privchat site`
 * adds the configured server's), and only a rebuilt, reloaded page has another one.
 */
export function cspBlockedText(origin) {
  return `This page's security policy (CSP connect-src) does not allow ${origin || "the API origin"}, so the browser blocks your server even while it runs: re-run \`privchat tunnel setup\` and rebuild the page, or serve it with \`privchat site\`, then reload`;
}

/** The connection status: a state of ConnectionStatus, its sentence and buttons. */
function forStatus(err, origin) {
  if (isNetwork(err, "offline")) return result("Browser offline", { state: "offline" });
  if (isNetwork(err, "csp")) return result(cspBlockedText(origin), { state: "csp", actions: [ACTIONS.reload] });
  const e2e = e2eCode(err);
  if (PAIR_AGAIN.includes(e2e)) return result("Server key not trusted — pair this browser again", { state: "untrusted", actions: [ACTIONS.repairKey] });
  if (e2e === "e2e_key_mismatch") {
    return result("The server's key could not be confirmed: run `privchat pair` and pair again", { state: "untrusted", actions: [ACTIONS.repairKey] });
  }
  // An old copy of the page (docs/E2E.md, "Versions"): asking again cannot help, reloading does.
  if (e2e === "e2e_version_old") return result("This page is out of date for your server — reload it", { state: "outdated", actions: [ACTIONS.reload] });
  // Not the server's word (a plain refusal, a changed status, an answer that does not open): shown
  // as it is (not hidden behind "Reconnecting…"), with Retry only, and nothing else changes.
  if (NOT_THE_SERVERS_WORD.includes(e2e)) return result(e2eText(err, e2e, "status"), { state: "unsealed", actions: [ACTIONS.retryNow] });
  if (e2e) return result(`Reconnecting… (${E2E_TEXT[e2e]})`, { state: "reconnecting", actions: [ACTIONS.retryNow] });
  if (isAccess(err)) {
    return result("Cloudflare Access sign-in needed", { state: "access", actions: [ACTIONS.signIn, ACTIONS.retry] });
  }
  if (isRevoked(err)) return result("Device revoked", { state: "revoked", actions: [ACTIONS.repair] });
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
  if (err instanceof PageLoadError) {
    return result("This page could not load the part that checks a typed code (offline, or the browser refused it), so nothing was sent. Reload the page and try again, or open the pairing link or QR code that `privchat pair` shows.");
  }
  if (e2eCode(err) === "e2e_key_mismatch") {
    return result("The server's encryption key is not the one your pairing link or code vouches for, so this browser was not paired: something between this browser and your computer may be in the way. Run `privchat pair` again and compare the server key fingerprint.");
  }
  if (e2eCode(err)) return result(e2eText(err, e2eCode(err), "pairing"));
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

// Voice input: the server's refusals of a recording (backend speech/errors.py), and the
// browser's refusals of the microphone (getUserMedia's DOMException names).
const VOICE_TEXT = {
  speech_disabled: "Voice input is turned off on your computer (speech.enabled: false in its config).",
  speech_unavailable: null, // the server's sentence says why (no model installed, a model that did not load)
  speech_busy: "Your computer is transcribing other recordings; try again in a moment.",
  audio_type_not_allowed: "This browser recorded in a format your computer does not accept, so nothing was transcribed.",
  audio_too_large: "The recording is too large to send; record a shorter one.",
  payload_too_large: "The recording is too large to send; record a shorter one.",
  audio_too_long: null, // the server's sentence names the limit
  audio_undecodable: "The recording could not be read as audio, so nothing was transcribed. Try recording again.",
  audio_silent: "No speech was heard in the recording: check the microphone and speak a little closer.",
};
const MICROPHONE_TEXT = {
  NotAllowedError: "The microphone is blocked for this page: allow it in the browser's site settings, then try again.",
  SecurityError: "The microphone is blocked for this page: allow it in the browser's site settings, then try again.",
  NotFoundError: "No microphone was found: connect one, then try again.",
  NotReadableError: "The microphone is in use by another app or could not be started; close that app, then try again.",
  AbortError: "The microphone could not be started; try again.",
  OverconstrainedError: "The microphone could not be started; try again.",
  NotSupportedError: "This browser cannot record audio here.",
};

/** Under the composer, after the microphone button. */
function forVoice(err, origin) {
  if (err && typeof err.name === "string" && Object.hasOwn(MICROPHONE_TEXT, err.name) && !(err instanceof ApiError)) {
    return result(MICROPHONE_TEXT[err.name]);
  }
  if (err instanceof ApiError && Object.hasOwn(VOICE_TEXT, err.code)) return result(VOICE_TEXT[err.code] || err.message);
  const { text, ...rest } = inline(err, origin);
  return { ...rest, text: `Not transcribed: ${text}` };
}

/** On a file's chip: the server's own sentence names the file and the rule. */
function forAttach(err, origin) {
  if (err && err.name === "ImageUnreadable" && !(err instanceof ApiError)) return result(err.message);
  if (isCode(err, "payload_too_large")) return result("Not attached: the file is larger than the server takes (attachments.max_bytes in its config).");
  if (err instanceof ApiError && /^attachment_/.test(err.code)) return result(err.message);
  const { text, ...rest } = inline(err, origin);
  return { ...rest, text: `Not attached: ${text}` };
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
    case "csp":
      return cspBlockedText(origin);
    case "interrupted":
      return "The connection closed before the reply was finished.";
    default:
      return isLoopbackOrigin(origin)
        ? "Server not reachable — start it with `privchat serve`."
        : `The API at ${origin} could not be reached: check the network connection.`;
  }
}

function inline(err, origin) {
  const e2e = e2eCode(err);
  if (e2e) return result(e2eText(err, e2e), { effect: PAIR_AGAIN.includes(e2e) ? "untrusted" : e2e === "e2e_version_old" ? "outdated" : null });
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
      // Models: the picked model is gone from the config, or does not fit in memory.
      case "model_unknown":
        return result("The server no longer has the model picked here; pick another one in the composer.");
      case "model_too_big":
        return result(`${err.message} Pick a smaller model in the composer.`);
      // Branches: the page named a message the server's conversation does not have.
      case "parent_invalid":
        return result("That message is no longer in this conversation (deleted on another device?). Open the conversation again and retry.");
      case "regenerate_invalid":
        return result("That reply can no longer be written again: it is not in this conversation any more. Open the conversation again.");
      default:
        return result(err.message);
    }
  }
  if (err instanceof NetworkError) return result(networkText(err, origin), { effect: err.kind === "aborted" ? null : "recheck" });
  if (isRevoked(err)) return result("This device was revoked. Pair it again to continue.", { effect: "revoked" });
  if (err instanceof KeyStorageError) return result(KEY_STORAGE_TEXT);
  if (err instanceof StreamError) return result(`The model stopped with an error: ${err.message || "no reason given"}`);
  return result(String(err && err.message ? err.message : err));
}
