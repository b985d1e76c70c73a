// The sealed, signed transport an ApiClient (api.js) holds: every request is sealed to the
// device's pinned server key and signed with the device key (RFC 9421; docs/E2E.md), every answer
// opened, an event stream read and opened frame by frame, and the pinned server key followed through
// a rotation. `credentials: "include"` lets a Cloudflare Access session cookie ride along when the
// API sits behind Access; a failed fetch is told apart (offline, nothing answers, Access, the
// computer behind the tunnel). Failures are thrown as the errors of errors.js (facts only);
// describe.js words them for the owner. It knows no route but the ones the protocol itself uses
// (health for the clock, the key route for a rotation) and no event's meaning: api.js names the
// routes and bodies, chat-events.js what a reply's events mean.
//
// Only what is sealed is believed (docs/E2E.md, "The meta line"): a sealed answer's status, the
// server's current key and the headers the page acts on come from the meta line inside the seal;
// an error answer to a device's request that comes without the seal is not the server's word
// (anything on the path can write one) and becomes e2e_unsealed_refusal, which changes nothing.

import { signRequest } from "./signing.js";
import { readSSE } from "./sse.js";
import { isLoopbackOrigin } from "./config.js";
import { ApiError, E2EError, NetworkError, errorFromResponse } from "./errors.js";
import { cspBlocks } from "./csp.js";
import { AccessSession } from "./access.js";
import { EventSequence } from "./resume.js";
import {
  CONTENT_TYPE as E2E_TYPE, FrameEventReader, META_HEADERS, NONCE_HEADER, REQUEST_HEADER, SEALED_EVENT,
  importServerKey, parseNonce, pinnable, sealRequest, splitMeta,
} from "./e2e.js";

// The server's plain refusals the page acts on without a seal: there is no context to seal them
// under, and what they make the page do is harmless (reload the page; re-read the clock from
// health and send once more).
const PLAIN_BELIEVED = new Set(["e2e_version_old", "clock_skew"]);
const NULL_BODY = new Set([204, 205, 304]);

/** The code a plain error answer's body names (an unproven hint), or null. */
async function plainHint(res) {
  try {
    const body = await res.json();
    const code = body && body.error && body.error.code;
    return typeof code === "string" && /^[a-z0-9_]{1,64}$/.test(code) ? code : null;
  } catch {
    return null;
  }
}

/**
 * The server key a health answer publishes, checked against a kid the page trusts (the pairing
 * link's): {kid, jwk, fingerprint}. e2e_key_mismatch when it differs or its kid is not its thumbprint.
 */
export async function publishedServerKey(health, expectedKid = null) {
  const pub = health && health.e2e;
  if (!pub || !pub.jwk) throw new E2EError("e2e_key_mismatch", "the server publishes no end-to-end key");
  const key = await importServerKey(pub.jwk, pub.kid || null);
  if (expectedKid && key.kid !== expectedKid) throw new E2EError("e2e_key_mismatch", `the server key is ${key.kid}, the link pins ${expectedKid}`);
  return pinnable(key);
}

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
    this.e2eOpeners = new WeakMap(); // stream Response -> {frames: its opener, kid, follow}
    this.metas = new WeakMap(); // opened one-chunk Response -> its meta line
    this.following = null; // the rotation being followed (one at a time)
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
    if (cspBlocks(this.origin)) return failure("csp"); // this page's own policy blocked it (csp.js)
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
   * A sealed answer, opened (docs/E2E.md, "A response", "The meta line"): a one-chunk answer becomes
   * a plain Response with the body after its meta line, the meta line's status (which must be the
   * one outside: e2e_status_mismatch) and its retry-after and content-disposition in place of the
   * copies outside; an event stream stays as it is, its opener kept for readEvents. A 2xx answer
   * must be sealed (e2e_unsealed); an error status may come plain, and is then returned as it is for
   * send() to disbelieve. `stream`: {kid (sealed to), follow (the stored device's: follow a
   * rotation its meta line names)} of the request, kept for readEvents.
   */
  async openAnswer(res, opener, stream = {}) {
    const nonceValue = res.headers.get(NONCE_HEADER);
    const type = res.headers.get("Content-Type") || "";
    if (!nonceValue) {
      if (res.ok) throw new E2EError("e2e_unsealed", `a ${res.status} answer without ${NONCE_HEADER}`);
      return res;
    }
    if (type.startsWith("text/event-stream")) {
      this.e2eOpeners.set(res, { frames: await opener.stream(nonceValue), ...stream });
      return res;
    }
    // Every sealed answer carries its meta line, so none can be a status without a body.
    if (NULL_BODY.has(res.status)) throw new E2EError("e2e_response_invalid", `a sealed ${res.status} answer cannot carry its meta line`);
    const nonce = parseNonce(nonceValue);
    const { meta, body } = splitMeta(await opener.open(nonce, new Uint8Array(await res.arrayBuffer())));
    if (meta.status !== res.status) throw new E2EError("e2e_status_mismatch", `sealed ${meta.status}, answered ${res.status}`);
    const headers = new Headers(res.headers);
    headers.delete(NONCE_HEADER);
    headers.delete("Content-Length");
    for (const name of META_HEADERS) {
      headers.delete(name); // the copy outside the seal is for HTTP's sake, never read
      if (Object.hasOwn(meta.headers, name)) headers.set(name, meta.headers[name]);
    }
    if (type.startsWith(E2E_TYPE)) headers.set("Content-Type", "application/json");
    const opened = new Response(body, { status: meta.status, statusText: res.statusText, headers });
    this.metas.set(opened, meta);
    return opened;
  }

  /**
   * Sends a signed request and returns the Response (status 2xx) or throws ApiError/E2EError/
   * NetworkError. A clock_skew answer re-syncs the clock from /api/health and retries once; a
   * sealed e2e_key_retired follows the rotation its meta line names and retries once, sealed to
   * the new key. An error answer without the seal is e2e_unsealed_refusal (but for the plain
   * refusals PLAIN_BELIEVED): nothing it says is acted on.
   * `device`: a device other than the stored one (registration): its answers' kid is not followed.
   */
  async send(method, path, opts = {}) {
    const { json, body, device, signal, headers = {}, retried = false, rotated = false } = opts;
    const follow = opts.follow !== undefined ? opts.follow : !device;
    const bodyText = json !== undefined ? JSON.stringify(json) : body !== undefined ? body : "";
    // Sealed to the pinned server key (docs/E2E.md): the signature covers the sealed bytes and the
    // Privchat-E2E header; a request without a body still makes the context that keys the answer.
    const dev = device || (await this.getDevice());
    if (!dev) throw new ApiError(401, "device_unknown", "This device is not paired yet.");
    const hasBody = method !== "GET" && method !== "HEAD" && (json !== undefined || body !== undefined);
    const serverKey = await this.serverKeyOf(dev);
    const sealed = await sealRequest({
      serverKey,
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
    const res = await this.openAnswer(await this.rawFetch(path, init), sealed.opener, { kid: serverKey.kid, follow });
    const again = (more) => this.send(method, path, { ...opts, ...more, follow });
    const meta = this.metas.get(res);
    if (!meta && !this.e2eOpeners.has(res)) {
      // Plain, so an error status (openAnswer refused a plain 2xx): not the server's word.
      const hint = await plainHint(res);
      if (hint === "clock_skew" && !retried) {
        await this.health({ signal });
        return again({ retried: true });
      }
      if (PLAIN_BELIEVED.has(hint)) throw new ApiError(res.status, hint, null);
      throw new E2EError("e2e_unsealed_refusal", `a ${res.status} answer without ${NONCE_HEADER}${hint ? ` (it says ${hint})` : ""}`, { status: res.status, hint });
    }
    if (res.ok) {
      if (meta && follow && meta.kid !== serverKey.kid) await this.followQuietly();
      return res;
    }
    const err = await errorFromResponse(res, meta);
    if (err.code === "clock_skew" && !retried) {
      await this.health({ signal });
      return again({ retried: true });
    }
    if (err.code === "e2e_key_retired" && follow && !rotated) {
      // Sealed, so the server holding the pinned key says it is retired: move to the key its
      // meta line names (confirmed by GET /api/e2e/key) and send once more, sealed to that key.
      const next = await this.followServerKey();
      if (next && next.kid !== serverKey.kid) return again({ rotated: true, device: { ...dev, serverKey: next } });
    }
    if (meta && follow && meta.kid !== serverKey.kid) await this.followQuietly();
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
   * Follows a rotation of the server key (docs/E2E.md, "The server key"): asks GET /api/e2e/key
   * sealed to the pinned key; only the holder of that key can answer, and its answer names the
   * current key, which is re-pinned (onServerKey) once its thumbprint matches its kid and its meta
   * line names the same key. Health is never the trigger: a plain answer may lie. A sealed answer
   * whose meta line names another kid is (send, readEvents). Past the grace period the server
   * cannot seal its refusal: that is e2e_unsealed_refusal, and nothing is re-pinned.
   * Returns the key in use, or null without a device.
   */
  followServerKey() {
    if (!this.following) {
      this.following = this.askServerKey().finally(() => {
        this.following = null;
      });
    }
    return this.following;
  }

  async askServerKey() {
    const dev = await this.getDevice();
    if (!dev) return null;
    const pinned = await this.serverKeyOf(dev);
    // follow: false: this answer's own meta line names the new key; it must not start another follow.
    const res = await this.send("GET", "/api/e2e/key", { device: dev, follow: false });
    const meta = this.metas.get(res);
    let answer;
    try {
      answer = JSON.parse(await res.text());
    } catch {
      answer = null;
    }
    const named = answer && answer.jwk ? answer : answer && answer.e2e;
    if (!named || !named.jwk || !named.kid) throw new E2EError("e2e_key_mismatch", "the key answer names no key");
    const key = pinnable(await importServerKey(named.jwk, named.kid));
    if (!meta || meta.kid !== key.kid) throw new E2EError("e2e_key_mismatch", "the key answer names another key than its meta line");
    if (key.kid !== pinned.kid) await this.onServerKey(key);
    return key;
  }

  /**
   * A sealed answer named another current key than the one it was sealed to, while the answer
   * itself is fine (the old key is within its grace period): follow the rotation, and if that
   * fails, keep the pinned key; the next sealed answer asks again.
   */
  async followQuietly() {
    try {
      await this.followServerKey();
    } catch {
      /* the pinned key stays; nothing was changed */
    }
  }

  // ------------------------------------------------------------ event streams

  /**
   * Reads a sealed event stream and hands on what it says, without knowing what any of it means:
   * each `event: sealed` is a frame, opened with its number (e2e.js); its payload goes to a
   * FrameEventReader, whose first line is the meta line (its status must be the one outside, and a
   * kid other than the pinned one starts following the rotation). For every frame that opens,
   * empty ones included (the server sends one each tick), `onFrame()`: the stream is alive. Then
   * each event the frame completes, `onEvent({event, id, data})` (the id from inside the seal, null
   * when it has none), in order, once the whole frame's numbering follows on (`after`: the cursor
   * the request named, null from the start; see EventSequence). Resolves when the final frame was
   * read; a stream that ends without it is e2e_truncated, one that does not open or breaks a rule
   * e2e_event_invalid, a dropped connection a NetworkError ("aborted" when the signal fired).
   */
  async readEvents(res, { onFrame = () => {}, onEvent = () => {} } = {}, { signal, after = null } = {}) {
    const type = res.headers.get("Content-Type") || "";
    if (!type.startsWith("text/event-stream")) {
      throw new ApiError(res.status, "bad_stream", "The server did not answer with an event stream.");
    }
    const sealed = this.e2eOpeners.get(res);
    if (!sealed) throw new E2EError("e2e_unsealed", "the event stream is not sealed");
    const opener = sealed.frames;
    const reader = new FrameEventReader();
    const sequence = new EventSequence({ after });
    let keyFollow = null;
    let failure = null;
    // Opening is asynchronous and the parser is not: frames are opened one after the other, in order.
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
      const { payload, final } = await opener.next(ev.data);
      const hadMeta = reader.meta !== null;
      const events = reader.push(payload, final);
      if (!hadMeta && reader.meta !== null) {
        if (reader.meta.status !== res.status) throw new E2EError("e2e_status_mismatch", `sealed ${reader.meta.status}, answered ${res.status}`);
        if (sealed.follow && reader.meta.kid !== sealed.kid) keyFollow = this.followQuietly();
      }
      for (const inner of events) sequence.check(inner); // the whole frame, before any of it is handed on
      onFrame();
      for (const { event, id, data } of events) onEvent({ event, id, data });
    };
    let readError = null;
    try {
      // The server sends no SSE comments; one that comes anyway is ignored (it is outside the seal,
      // so it cannot say the stream is alive either).
      await readSSE(res, (ev) => later(() => dispatch(ev)), { signal: reading.signal });
    } catch (err) {
      readError = err;
    } finally {
      if (signal) signal.removeEventListener("abort", stopReading);
    }
    await queue;
    if (keyFollow) await keyFollow;
    if (failure) throw failure;
    // The reader marks the stream finished only once the final frame's closing event was read whole.
    if (reader.finished) return;
    if (signal && signal.aborted) throw await this.networkError(Object.assign(new Error("aborted"), { name: "AbortError" }));
    if (readError) throw await this.networkError(readError);
    opener.end(); // e2e_truncated: the stream closed before its final frame
    reader.end();
    throw new NetworkError("interrupted", { origin: this.origin });
  }
}
