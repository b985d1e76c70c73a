// What went wrong, as facts: the errors the page's services throw carry a status, a code or a
// kind, never the sentence the owner reads (describe.js turns each into that sentence). An ApiError
// keeps the server's own sentence, read from its answer by errorFromResponse.

/** An error answer from the API: {"error": {"code", "message"}}; message is the server's sentence. */
export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null } = {}) {
    super(message || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.code = code || `http_${status}`;
    this.retryAfter = retryAfter;
  }
}

function retryAfterSeconds(res) {
  const v = res.headers.get("Retry-After");
  if (!v) return null;
  const n = Number(v);
  if (Number.isFinite(n)) return Math.max(0, n);
  const d = Date.parse(v);
  return Number.isFinite(d) ? Math.max(0, Math.round((d - Date.now()) / 1000)) : null;
}

/** The ApiError for a non-2xx answer: the server's code and sentence, or a generic one. */
export async function errorFromResponse(res) {
  let code = null;
  let message = null;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || null;
      message = body.error.message || null;
    }
  } catch {
    /* not JSON: keep the generic sentence */
  }
  if (!code && res.status === 403) code = "access_denied";
  if (!message) {
    message =
      res.status === 403
        ? "Access was denied (Cloudflare Access sign-in may be needed)."
        : res.status >= 500
          ? `The server had a problem (HTTP ${res.status}).`
          : `The request failed (HTTP ${res.status}).`;
  }
  return new ApiError(res.status, code, message, { retryAfter: retryAfterSeconds(res) });
}

/**
 * The request never got an answer we could read. kind:
 *   "offline"      the browser says it is offline
 *   "access"       Cloudflare Access wants a sign-in (redirect, opaque answer, a login page)
 *   "tunnel"       something at the API host name answered, but not privchat: the edge is there,
 *                  the computer behind the tunnel is not (asleep, privchat or cloudflared stopped,
 *                  or the tunnel refused the request)
 *   "unreachable"  nothing answered: connection refused, DNS, no network path
 *   "aborted"      we aborted it ourselves
 *   "interrupted"  a reply stream closed before its last event
 */
export class NetworkError extends Error {
  constructor(kind, { origin = null, cause = undefined } = {}) {
    super(`${kind}: no readable answer from ${origin || "the API"}`);
    this.name = "NetworkError";
    this.kind = kind;
    this.origin = origin;
    this.cause = cause;
  }
}

/** The model failed in the middle of a reply: the stream's "error" event. */
export class StreamError extends Error {
  constructor({ code = null, message = "" } = {}) {
    super(message || "");
    this.name = "StreamError";
    this.code = code;
  }
}

/** This browser cannot keep the device key in IndexedDB (private browsing, storage switched off…). */
export class KeyStorageError extends Error {
  constructor(cause) {
    super(`IndexedDB cannot keep the device key${cause && cause.message ? `: ${cause.message}` : ""}`);
    this.name = "KeyStorageError";
    this.code = "no_key_storage";
    this.cause = cause;
  }
}

/**
 * The end-to-end seal did not hold (docs/E2E.md), found by the page itself. code:
 *   "e2e_key_mismatch"      the server's key is not the one pinned (pairing link, key confirmation,
 *                           a rotation answer whose key does not match its kid)
 *   "e2e_key_unpinned"      this device has no pinned server key (paired before E2E): pair again
 *   "e2e_unsealed"          a 2xx answer (or a stream event) came without its seal
 *   "e2e_response_invalid"  a sealed one-chunk answer did not open (tampered, or not for this request)
 *   "e2e_event_invalid"     a stream event did not open with its number (dropped, reordered,
 *                           replayed, tampered), or came after the final one
 *   "e2e_truncated"         a stream ended without its final event
 * (The server's own refusals, e2e_required, e2e_malformed, e2e_key_unknown and e2e_open_failed,
 * come as ApiError.)
 */
export class E2EError extends Error {
  constructor(code, detail = "", { cause = undefined } = {}) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "E2EError";
    this.code = code;
    this.cause = cause;
  }
}
