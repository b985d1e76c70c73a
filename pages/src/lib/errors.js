// What went wrong, as facts: the errors the page's services throw carry a status, a code or a
// kind, never the sentence the owner reads (describe.js turns each into that sentence). An ApiError
// keeps the server's own sentence, read from its answer by errorFromResponse: for a device's
// request only from a sealed answer (an unsealed refusal is an E2EError, its words never kept).

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

// Read from the answer's meta line only (docs/E2E.md, "The meta line"): a Retry-After outside the
// seal could be set by anything on the path, to stall the page or make it hammer the server.
function retryAfterSeconds(meta) {
  const v = meta && meta.headers ? meta.headers["retry-after"] : null;
  if (!v) return null;
  const n = Number(v);
  if (Number.isFinite(n)) return Math.max(0, n);
  const d = Date.parse(v);
  return Number.isFinite(d) ? Math.max(0, Math.round((d - Date.now()) / 1000)) : null;
}

/**
 * The ApiError for a non-2xx answer: the server's code and sentence, or a generic one. `meta` is
 * the sealed answer's meta line (its retry-after is the one believed); null for a plain answer.
 */
export async function errorFromResponse(res, meta = null) {
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
  return new ApiError(res.status, code, message, { retryAfter: retryAfterSeconds(meta) });
}

/**
 * The request never got an answer we could read. kind:
 *   "offline"      the browser says it is offline
 *   "access"       Cloudflare Access wants a sign-in (redirect, opaque answer, a login page)
 *   "tunnel"       something at the API host name answered, but not privchat: the edge is there,
 *                  the computer behind the tunnel is not (asleep, privchat or cloudflared stopped,
 *                  or the tunnel refused the request)
 *   "unreachable"  nothing answered: connection refused, DNS, no network path
 *   "csp"          this page's Content-Security-Policy (connect-src) does not allow the API
 *                  origin, so the browser never sent the request (csp.js)
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
 *   "e2e_status_mismatch"   a sealed answer's status (its meta line) is not the HTTP status outside
 *   "e2e_unsealed_refusal"  a device's request got an error answer without its seal: not believed.
 *                           `status` is the status outside and `hint` the code its plain body
 *                           named: both unproven (anything on the path can write them), never
 *                           acted on and never shown as the server's words
 * (The server's own sealed refusals come as ApiError; of its plain ones only e2e_version_old and
 * clock_skew are, whose only effects, reloading and re-reading the clock, are harmless.)
 */
export class E2EError extends Error {
  constructor(code, detail = "", { cause = undefined, status = null, hint = null } = {}) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "E2EError";
    this.code = code;
    this.cause = cause;
    this.status = status;
    this.hint = hint;
  }
}

/**
 * A part of the page loaded on demand could not be loaded or started: `part` names it ("opaque":
 * the typed code's OPAQUE client, dist/chat/opaque.js, and its WebAssembly). Offline, a host that
 * does not serve it, or a browser (or CSP) that refuses to compile WebAssembly.
 */
export class PageLoadError extends Error {
  constructor(part, cause) {
    super(`the page's ${part} module could not be loaded${cause && cause.message ? `: ${cause.message}` : ""}`);
    this.name = "PageLoadError";
    this.code = "page_load_failed";
    this.part = part;
    this.cause = cause;
  }
}
