// The sealed, signed transport under the API client (api.js): every request is sealed to the
// device's pinned server key and signed with the device key (RFC 9421; docs/E2E.md), every answer
// opened, a reply stream read and opened event by event, and the pinned server key followed through
// a rotation. `credentials: "include"` lets a Cloudflare Access session cookie ride along when the
// API sits behind Access; a failed fetch is told apart (offline, nothing answers, Access, the
// computer behind the tunnel). Failures are thrown as the errors of errors.js (facts only);
// describe.js words them for the owner. api.js only names routes and bodies.

import { signRequest } from "./signing.js";
import { readSSE } from "./sse.js";
import { isLoopbackOrigin } from "./config.js";
import { ApiError, E2EError, NetworkError, StreamError, errorFromResponse } from "./errors.js";
import { AccessSession } from "./access.js";
import { CONTENT_TYPE as E2E_TYPE, NONCE_HEADER, REQUEST_HEADER, SEALED_EVENT, importServerKey, parseNonce, pinnable, sealRequest } from "./e2e.js";

export class SealedTransport {
  /**
   * @param {string} origin  API origin, e.g. "http://127.0.0.1:8765"
   * @param {{getDevice?: () => Promise<{keyPair, deviceId, serverKey}|null>,
   *          onServerKey?: (key: {kid, jwk, fingerprint}) => Promise<void>|void}} opts
   *   serverKey    the pinned server key {kid, jwk, fingerprint} every request is sealed to (docs/E2E.md)
   *   onServerKey  a rotation was confirmed: keep this key with the device from now on
   */
  constructor(origin, { getDevice = async () => null, onServerKey = async () => {} } = {}) {
    this.origin = origin;
    this.getDevice = getDevice;
    this.onServerKey = onServerKey;
    this.e2eOpeners = new WeakMap(); // Response -> the stream opener of its sealed events
    this.importedKeys = new Map(); // kid -> the imported public key (importing costs a little)
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

  async signedHeaders(method, path, bodyText, device, e2eHeader) {
    const dev = device || (await this.getDevice());
    if (!dev) throw new ApiError(401, "device_unknown", "This device is not paired yet.");
    return signRequest({
      privateKey: dev.keyPair.privateKey,
      keyId: dev.deviceId,
      method,
      url: this.url(path),
      body: bodyText,
      e2e: e2eHeader,
      now: this.now(),
    });
  }

  /** The pinned server key of a device, imported (e2e_key_unpinned when it has none). */
  async serverKeyOf(dev) {
    const pinned = dev && dev.serverKey;
    if (!pinned || !pinned.kid || !pinned.jwk) throw new E2EError("e2e_key_unpinned", "this device has no pinned server key");
    let key = this.importedKeys.get(pinned.kid);
    if (!key) {
      key = await importServerKey(pinned.jwk, pinned.kid);
      this.importedKeys.set(pinned.kid, key);
    }
    return key;
  }

  /**
   * A sealed answer, opened (docs/E2E.md, "A response"): a one-chunk answer becomes a plain Response
   * with the opened bytes; an event stream stays as it is, its opener kept for readReply. A 2xx
   * answer must be sealed (e2e_unsealed); an error status may come plain (the gate's refusals).
   */
  async openAnswer(res, opener) {
    const nonceValue = res.headers.get(NONCE_HEADER);
    const type = res.headers.get("Content-Type") || "";
    if (!nonceValue) {
      if (res.ok && res.status !== 204) throw new E2EError("e2e_unsealed", `a ${res.status} answer without ${NONCE_HEADER}`);
      return res;
    }
    if (type.startsWith("text/event-stream")) {
      this.e2eOpeners.set(res, await opener.stream(nonceValue));
      return res;
    }
    const nonce = parseNonce(nonceValue);
    const sealed = new Uint8Array(await res.arrayBuffer());
    const plain = res.status === 204 || res.status === 205 || res.status === 304 ? null : await opener.open(nonce, sealed);
    const headers = new Headers(res.headers);
    headers.delete(NONCE_HEADER);
    headers.delete("Content-Length");
    if (type.startsWith(E2E_TYPE)) headers.set("Content-Type", "application/json");
    return new Response(plain, { status: res.status, statusText: res.statusText, headers });
  }

  /**
   * Sends a signed request and returns the Response (status 2xx) or throws ApiError/NetworkError.
   * A clock_skew answer re-syncs the clock from /api/health and retries once.
   */
  async send(method, path, { json, body, device, signal, headers = {}, retried = false } = {}) {
    const bodyText = json !== undefined ? JSON.stringify(json) : body !== undefined ? body : "";
    // Sealed to the pinned server key (docs/E2E.md): the signature covers the sealed bytes and the
    // Privchat-E2E header; a request without a body still makes the context that keys the answer.
    const dev = device || (await this.getDevice());
    if (!dev) throw new ApiError(401, "device_unknown", "This device is not paired yet.");
    const hasBody = method !== "GET" && method !== "HEAD" && (json !== undefined || body !== undefined);
    const sealed = await sealRequest({
      serverKey: await this.serverKeyOf(dev),
      method,
      target: path,
      deviceId: dev.deviceId,
      bodyBytes: hasBody ? bodyText : null,
    });
    const sig = await this.signedHeaders(method, path, sealed.body || "", dev, sealed.header);
    const h = { ...headers, ...sig, [REQUEST_HEADER]: sealed.header };
    for (const k of Object.keys(h)) if (k.toLowerCase() === "content-type") delete h[k];
    if (sealed.body) h["Content-Type"] = E2E_TYPE;
    const init = { method, headers: h, signal };
    if (sealed.body) init.body = sealed.body;
    const res = await this.openAnswer(await this.rawFetch(path, init), sealed.opener);
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

  // ------------------------------------------------------------ the server key

  /**
   * The server key published by /api/health, checked against a kid the page trusts (the pairing
   * link's): {kid, jwk, fingerprint}. e2e_key_mismatch when it differs or its kid is not its thumbprint.
   */
  async publishedServerKey(health = this.lastHealth, expectedKid = null) {
    const pub = health && health.e2e;
    if (!pub || !pub.jwk) throw new E2EError("e2e_key_mismatch", "the server publishes no end-to-end key");
    const key = await importServerKey(pub.jwk, pub.kid || null);
    if (expectedKid && key.kid !== expectedKid) throw new E2EError("e2e_key_mismatch", `the server key is ${key.kid}, the link pins ${expectedKid}`);
    return pinnable(key);
  }

  /**
   * After a health check: when the server publishes another key than the pinned one (a rotation),
   * ask GET /api/e2e/key sealed to the pinned key; only the holder of that key can answer, and its
   * answer names the new key, which is re-pinned (onServerKey) once its thumbprint matches its kid.
   * Past the grace period the server answers e2e_key_unknown (an ApiError): pair again.
   * Returns the key in use, or null without a device.
   */
  async followServerKey(health = this.lastHealth) {
    const dev = await this.getDevice();
    if (!dev) return null;
    const pinned = await this.serverKeyOf(dev);
    const pub = health && health.e2e;
    if (!pub || !pub.kid || pub.kid === pinned.kid) return pinnable(pinned);
    const answer = await this.json("GET", "/api/e2e/key", { device: dev });
    const named = answer && answer.jwk ? answer : answer && answer.e2e;
    if (!named || !named.jwk || !named.kid) throw new E2EError("e2e_key_mismatch", "the key answer names no key");
    const key = pinnable(await importServerKey(named.jwk, named.kid));
    if (key.kid !== pinned.kid) await this.onServerKey(key);
    return key;
  }

  // ------------------------------------------------------------ reply streams

  /**
   * Reads a sealed reply stream: each `event: sealed` is opened with its number (e2e.js) and its
   * inner {id, event, data} goes to the handlers; ids come from inside the seal. A stream that ends
   * without its final event is e2e_truncated; one that does not open, e2e_event_invalid.
   */
  async readReply(res, handlers, signal) {
    const type = res.headers.get("Content-Type") || "";
    if (!type.startsWith("text/event-stream")) {
      throw new ApiError(res.status, "bad_stream", "The server did not answer with an event stream.");
    }
    const opener = this.e2eOpeners.get(res);
    if (!opener) throw new E2EError("e2e_unsealed", "the event stream is not sealed");
    const on = {
      start: handlers.onStart,
      queued: handlers.onQueued,
      loading: handlers.onLoading,
      token: handlers.onToken,
      snapshot: handlers.onSnapshot,
    };
    let finished = false;
    let failure = null;
    // Opening is asynchronous and the parser is not: events are opened one after the other, in order.
    let queue = Promise.resolve();
    const reading = new AbortController();
    const stopReading = () => reading.abort();
    if (signal) {
      if (signal.aborted) stopReading();
      else signal.addEventListener("abort", stopReading, { once: true });
    }
    const later = (fn) => {
      queue = queue.then(async () => {
        if (failure) return;
        try {
          await fn();
        } catch (err) {
          failure = err;
          stopReading();
        }
      });
    };
    const dispatch = async (ev) => {
      if (ev.event !== SEALED_EVENT) throw new E2EError("e2e_unsealed", `a plain "${ev.event}" event in a sealed stream`);
      const { plaintext, final } = await opener.next(ev.data);
      let inner;
      try {
        inner = JSON.parse(new TextDecoder().decode(plaintext));
      } catch (err) {
        throw new E2EError("e2e_event_invalid", "an opened event is not JSON", { cause: err });
      }
      const name = inner && typeof inner.event === "string" ? inner.event : "";
      if (final !== (name === "done" || name === "error")) {
        throw new E2EError("e2e_event_invalid", final ? `the final event is "${name}"` : `"${name}" is not marked final`);
      }
      const data = inner.data === undefined ? null : inner.data;
      const id = typeof inner.id === "string" ? inner.id : undefined;
      if (on[name]) on[name](data, id);
      else if (name === "done") {
        finished = true;
        if (handlers.onDone) handlers.onDone(data, id);
      } else if (name === "error") {
        finished = true;
        if (handlers.onError) handlers.onError(new StreamError(data || {}), id);
      }
    };
    let readError = null;
    try {
      await readSSE(res, (ev) => later(() => dispatch(ev)), {
        signal: reading.signal,
        onComment: (c) => later(() => handlers.onPing && handlers.onPing(c)),
      });
    } catch (err) {
      readError = err;
    } finally {
      if (signal) signal.removeEventListener("abort", stopReading);
    }
    await queue;
    if (failure) throw failure;
    if (finished) return;
    if (signal && signal.aborted) throw await this.networkError(Object.assign(new Error("aborted"), { name: "AbortError" }));
    if (readError) throw await this.networkError(readError);
    opener.end(); // e2e_truncated: the stream closed before its final event
    throw new NetworkError("interrupted", { origin: this.origin });
  }
}
