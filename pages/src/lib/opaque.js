// The client half of a typed code's OPAQUE login (docs/E2E.md, "A typed code: an OPAQUE login"),
// through @serenity-kit/opaque (opaque-ke compiled to WebAssembly; the backend's opaquepy is the
// same crate). The library carries its WebAssembly inline (~420 KB) and compiles it with
// WebAssembly.compile, which the page's CSP allows by 'wasm-unsafe-eval' in script-src.
//
// Loaded only when the owner types a code: api.js import()s this module, so the build makes it (and
// the library) a file of its own, dist/chat/opaque.js, which app.js does not carry. It must import
// nothing but the library: a module it shared with app.js would become a third file.
//
// Stateless: the login's state between its two steps is the caller's (api.js keeps it in a local).

import { client, ready } from "@serenity-kit/opaque";

/**
 * Argon2id m = 19456 KiB, t = 2, p = 1: argon2 0.5.3's default, which the backend's opaquepy fixes.
 * Any other parameters give another key, and every login against the server's record fails.
 */
export const KEY_STRETCHING = Object.freeze({ "argon2id-custom": Object.freeze({ memory: 19456, iterations: 2, parallelism: 1 }) });

/** Resolves once the WebAssembly is compiled (rejects when the CSP or the browser refuses it). */
export function whenReady() {
  return ready;
}

/**
 * Step 1: the login's first message. `password` is the normalised code.
 * @returns {Promise<{state: string, request: string}>}  state: keep it for finishLogin (never sent)
 */
export async function startLogin(password) {
  await ready;
  const { clientLoginState, startLoginRequest } = client.startLogin({ password });
  return { state: clientLoginState, request: startLoginRequest };
}

/**
 * Step 2: finishes the login with the server's answer. Returns null when the code is wrong or the
 * answer is not from the server that holds the code's record (nothing is to be sent then), else
 * {finalization, sessionKey} (base64url; the session key is 64 bytes).
 */
export async function finishLogin({ state, response, password }) {
  await ready;
  let result;
  try {
    result = client.finishLogin({
      clientLoginState: state,
      loginResponse: response,
      password,
      keyStretching: { "argon2id-custom": { ...KEY_STRETCHING["argon2id-custom"] } },
    });
  } catch {
    result = undefined; // a message that does not even parse: the same as a wrong code
  }
  if (!result || typeof result.finishLoginRequest !== "string" || typeof result.sessionKey !== "string") return null;
  return { finalization: result.finishLoginRequest, sessionKey: result.sessionKey };
}
