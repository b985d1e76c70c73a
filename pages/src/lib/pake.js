// A typed code's pairing (docs/E2E.md, "A typed code: an OPAQUE login"): the pure parts. The
// OPAQUE messages themselves come from opaque.js (loaded on demand); this module builds the two
// request bodies, reads the first answer, and makes and checks the two MACs keyed by the login's
// session key that bind the pairing to the device and to the server key the page sealed to:
//
//   device_proof     = base64url(HMAC-SHA256(sessionKey, "privchat pairing device v2" 0x00 device_id 0x00 kid))
//   key_confirmation = base64url(HMAC-SHA256(sessionKey, "privchat pairing confirm v2" 0x00 device_id 0x00 kid))
//
// sessionKey: the bytes of the base64url session key finishLogin gives (64 bytes). Stateless, and
// small: it is part of app.js, unlike the OPAQUE library.

import { E2EError } from "./errors.js";
import { base64UrlToBytes, bytesToBase64Url } from "./signing.js";

export const DEVICE_LABEL = "privchat pairing device v2";
export const CONFIRM_LABEL = "privchat pairing confirm v2";

const encoder = new TextEncoder();
const B64URL = /^[A-Za-z0-9_-]+$/;

function sessionKeyBytes(sessionKey) {
  if (typeof sessionKey !== "string" || !B64URL.test(sessionKey)) throw new TypeError("the session key is not base64url");
  return base64UrlToBytes(sessionKey);
}

/** base64url(HMAC-SHA256(key = session key bytes, label 0x00 deviceId 0x00 kid)) */
export async function sessionMac(label, sessionKey, deviceId, kid) {
  const subtle = globalThis.crypto.subtle;
  const key = await subtle.importKey("raw", sessionKeyBytes(sessionKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return bytesToBase64Url(new Uint8Array(await subtle.sign("HMAC", key, encoder.encode(`${label}\0${deviceId}\0${kid}`))));
}

/** What the page sends with the login's last message: the device and the kid it sealed to, under the session key. */
export function deviceProof(sessionKey, deviceId, kid) {
  return sessionMac(DEVICE_LABEL, sessionKey, deviceId, kid);
}

/** What the server answers once the device is registered: the same, with the kid that opened the request. */
export function loginConfirmation(sessionKey, deviceId, kid) {
  return sessionMac(CONFIRM_LABEL, sessionKey, deviceId, kid);
}

/** Compares two base64url strings without stopping at the first difference. */
function sameText(want, got) {
  let diff = want.length ^ got.length;
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ (got.charCodeAt(i) || 0);
  return diff === 0;
}

/**
 * Throws e2e_key_mismatch unless `confirmation` is the server's confirmation of this login for this
 * device and the kid the page sealed to (then, and only then, that key may be pinned).
 */
export async function checkLoginConfirmation(confirmation, sessionKey, deviceId, kid) {
  const want = await loginConfirmation(sessionKey, deviceId, kid);
  const got = typeof confirmation === "string" ? confirmation.replace(/=+$/, "") : "";
  if (!sameText(want, got)) throw new E2EError("e2e_key_mismatch", "the server's key confirmation does not match this login and the pinned key");
}

/** Step 1's body: POST /api/auth/pairing {request, public_key}. */
export function startPairingBody({ request, publicJwk }) {
  return { request, public_key: publicJwk };
}

/**
 * Step 1's answer {pairing_id, response}, or null when it is not one (then the login cannot finish,
 * which is the same as a wrong code: nothing more is sent).
 */
export function readPairingStarted(answer) {
  if (!answer || typeof answer !== "object") return null;
  const { pairing_id: pairingId, response } = answer;
  if (typeof pairingId !== "string" || !B64URL.test(pairingId) || typeof response !== "string" || !B64URL.test(response)) return null;
  return { pairingId, response };
}

/** Step 3's body: POST /api/auth/device {pairing_id, finalization, device_proof, public_key, name}. */
export function typedRegistrationBody({ pairingId, finalization, deviceProof: proof, publicJwk, name }) {
  return { pairing_id: pairingId, finalization, device_proof: proof, public_key: publicJwk, name };
}
