// Signed client for the privchat API. Every request but health and registration carries an
// RFC 9421 signature made with the device key; `credentials: "include"` lets a Cloudflare
// Access session cookie ride along when the API sits behind Access. Failures are thrown as the
// errors of errors.js (facts only); describe.js words them for the owner.

import { signRequest } from "./signing.js";
import { readSSE } from "./sse.js";
import { isLoopbackOrigin } from "./config.js";
import { ApiError, NetworkError, StreamError, errorFromResponse } from "./errors.js";
import { AccessSession } from "./access.js";

export class ApiClient {
  /**
   * @param {string} origin  API origin, e.g. "http://127.0.0.1:8765"
   * @param {{getDevice?: () => Promise<{keyPair, deviceId}|null>}} opts
   */
  constructor(origin, { getDevice = async () => null } = {}) {
    this.origin = origin;
    this.getDevice = getDevice;
    this.offsetMs = 0; // serverTime - localTime
    this.lastHealth = null;
    this.access = new AccessSession(origin);
  }

  now() {
    return Date.now() + this.offsetMs;
  }

  url(path) {
    return this.origin + path;
  }

  /**
   * Why did a fetch fail? A cross-origin fetch that fails says nothing about the cause: Access's
   * redirect to its sign-in page, cloudflared's 502 for a computer that is off and its 403 for a
   * token it refuses all come without CORS headers. Two things are known, though: whether anything
   * answers at the API host name at all (a no-cors request resolves on any answer and fails only
   * when nothing answers), and when the Access session ends (the backend named it on the last
   * answer that came through). Nothing answers: the network. The session is alive, or the owner
   * has just been sent to sign in: the computer behind the tunnel. Otherwise: sign in.
   */
  async networkError(err) {
    const failure = (kind) => new NetworkError(kind, { origin: this.origin, cause: err });
    if (err && err.name === "AbortError") return failure("aborted");
    if (typeof navigator !== "undefined" && navigator.onLine === false) return failure("offline");
    if (isLoopbackOrigin(this.origin)) return failure("unreachable");
    try {
      await fetch(this.url("/api/health"), {
        mode: "no-cors",
        credentials: "include",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch {
      return failure("unreachable");
    }
    return failure(this.access.likelySignedIn(this.now(), this.offsetMs) ? "tunnel" : "access");
  }

  async rawFetch(path, init) {
    let res;
    try {
      res = await fetch(this.url(path), {
        mode: "cors",
        credentials: "include",
        cache: "no-store",
        redirect: "manual", // the API never redirects; a redirect means Access wants a sign-in
        referrerPolicy: "no-referrer",
        ...init,
      });
    } catch (err) {
      throw await this.networkError(err);
    }
    this.access.noteAnswer(res);
    if (res.type === "opaqueredirect" || res.type === "opaque" || (res.status >= 300 && res.status < 400)) {
      throw new NetworkError("access", { origin: this.origin });
    }
    return res;
  }

  /** GET /api/health (public). Also corrects the clock offset used for `created`. */
  async health({ signal } = {}) {
    const t0 = Date.now();
    const res = await this.rawFetch("/api/health", { method: "GET", signal });
    const t1 = Date.now();
    if (!res.ok) throw await errorFromResponse(res);
    let body;
    try {
      body = await res.json();
    } catch (err) {
      // An HTML login page instead of JSON also means Access is in the way.
      throw new NetworkError("access", { origin: this.origin, cause: err });
    }
    if (body && typeof body.time === "number" && Number.isFinite(body.time)) {
      this.offsetMs = Math.round(body.time * 1000 - (t0 + t1) / 2);
    }
    this.lastHealth = body;
    return body;
  }

  async signedHeaders(method, path, bodyText, device) {
    const dev = device || (await this.getDevice());
    if (!dev) throw new ApiError(401, "device_unknown", "This device is not paired yet.");
    return signRequest({
      privateKey: dev.keyPair.privateKey,
      keyId: dev.deviceId,
      method,
      url: this.url(path),
      body: bodyText,
      now: this.now(),
    });
  }

  /**
   * Sends a signed request and returns the Response (status 2xx) or throws ApiError/NetworkError.
   * A clock_skew answer re-syncs the clock from /api/health and retries once.
   */
  async send(method, path, { json, body, device, signal, headers = {}, retried = false } = {}) {
    const bodyText = json !== undefined ? JSON.stringify(json) : body !== undefined ? body : "";
    const sig = await this.signedHeaders(method, path, bodyText, device);
    const h = { ...headers, ...sig };
    if (json !== undefined && !h["Content-Type"]) h["Content-Type"] = "application/json";
    const init = { method, headers: h, signal };
    if (method !== "GET" && method !== "HEAD") init.body = bodyText;
    const res = await this.rawFetch(path, init);
    if (res.ok) return res;
    const err = await errorFromResponse(res);
    if (err.code === "clock_skew" && !retried) {
      await this.health({ signal });
      return this.send(method, path, { json, body, device, signal, headers, retried: true });
    }
    throw err;
  }

  async json(method, path, opts) {
    const res = await this.send(method, path, opts);
    if (res.status === 204) return null;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  // ------------------------------------------------------------ devices

  /** Registers a new device key with a pairing code. The request is signed by that new key. */
  registerDevice({ pairingCode, publicJwk, name, device }) {
    return this.json("POST", "/api/auth/device", {
      json: { pairing_code: pairingCode, public_key: publicJwk, name },
      device,
    });
  }

  whoAmI(opts) {
    return this.json("GET", "/api/auth/device", opts);
  }

  listDevices() {
    return this.json("GET", "/api/devices");
  }

  revokeDevice(id) {
    return this.json("DELETE", `/api/devices/${encodeURIComponent(id)}`);
  }

  // ------------------------------------------------------------ chat

  /**
   * POST /api/chat and stream the reply. Handlers: onStart, onQueued, onToken, onSnapshot, onDone,
   * onError (the stream's error event, as a StreamError), onPing; each gets (data, eventId).
   * Resolves when the stream ends; throws ApiError before the stream starts, NetworkError if the
   * connection drops (kind "aborted" when the signal fired).
   */
  async chat({ conversationId, message, options, signal }, handlers = {}) {
    const payload = { message };
    if (conversationId) payload.conversation_id = conversationId;
    if (options && Object.keys(options).length) payload.options = options;
    const res = await this.send("POST", "/api/chat", {
      json: payload,
      signal,
      headers: { Accept: "text/event-stream" },
    });
    return this.readReply(res, handlers, signal);
  }

  /**
   * GET /api/chat/<id>/stream: a reply's events after `lastEventId` (all without it), then the live
   * ones, with the same handlers as chat(). The id goes in the query, which the signature covers
   * (a Last-Event-ID header would need its own CORS allowance at Access).
   */
  async attach({ assistantId, lastEventId = null, signal }, handlers = {}) {
    const q = lastEventId ? `?${new URLSearchParams({ last_event_id: lastEventId })}` : "";
    const res = await this.send("GET", `/api/chat/${encodeURIComponent(assistantId)}/stream${q}`, {
      signal,
      headers: { Accept: "text/event-stream" },
    });
    if (handlers.onOpen) handlers.onOpen();
    return this.readReply(res, handlers, signal);
  }

  async readReply(res, handlers, signal) {
    const type = res.headers.get("Content-Type") || "";
    if (!type.startsWith("text/event-stream")) {
      throw new ApiError(res.status, "bad_stream", "The server did not answer with an event stream.");
    }
    const on = {
      start: handlers.onStart,
      queued: handlers.onQueued,
      token: handlers.onToken,
      snapshot: handlers.onSnapshot,
    };
    let finished = false;
    try {
      await readSSE(
        res,
        (ev) => {
          let data = null;
          try {
            data = ev.data ? JSON.parse(ev.data) : null;
          } catch {
            return; // not ours
          }
          if (on[ev.event]) on[ev.event](data, ev.id);
          else if (ev.event === "done") {
            finished = true;
            if (handlers.onDone) handlers.onDone(data, ev.id);
          } else if (ev.event === "error") {
            finished = true;
            if (handlers.onError) handlers.onError(new StreamError(data || {}), ev.id);
          }
        },
        { signal, onComment: handlers.onPing },
      );
    } catch (err) {
      if (finished) return;
      throw await this.networkError(signal && signal.aborted ? Object.assign(new Error("aborted"), { name: "AbortError" }) : err);
    }
    if (!finished) {
      throw new NetworkError(signal && signal.aborted ? "aborted" : "interrupted", { origin: this.origin });
    }
  }

  cancel(assistantMessageId) {
    return this.json("POST", `/api/chat/${encodeURIComponent(assistantMessageId)}/cancel`, { json: {} });
  }

  // ------------------------------------------------------------ history

  listConversations({ limit = 50, before = null } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== null && before !== undefined) q.set("before", String(before));
    return this.json("GET", `/api/history?${q}`);
  }

  getConversation(id) {
    return this.json("GET", `/api/history/${encodeURIComponent(id)}`);
  }

  deleteConversation(id) {
    return this.json("DELETE", `/api/history/${encodeURIComponent(id)}`);
  }

  clearHistory() {
    return this.json("DELETE", "/api/history");
  }

  /** Returns {blob, filename}. */
  async exportHistory(format) {
    const res = await this.send("GET", `/api/history/export?format=${encodeURIComponent(format)}`);
    const blob = await res.blob();
    let filename = null;
    const cd = res.headers.get("Content-Disposition");
    if (cd) {
      const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
      if (m) filename = decodeURIComponent(m[1]).replace(/[\\/]/g, "_");
    }
    if (!filename) {
      const day = new Date().toISOString().slice(0, 10);
      filename = `privchat-export-${day}.${format === "markdown" ? "md" : "json"}`;
    }
    return { blob, filename };
  }

  importHistory(text) {
    return this.json("POST", "/api/history/import", {
      body: text,
      headers: { "Content-Type": "application/json" },
    });
  }

  // ------------------------------------------------------------ settings

  getSettings() {
    return this.json("GET", "/api/settings");
  }

  putSettings(settings) {
    return this.json("PUT", "/api/settings", { json: settings });
  }
}
