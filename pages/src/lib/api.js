// The privchat API, route by route: which method, path and body each call is, and what a reply
// stream's events mean (chat-events.js). The client holds a transport (transport.js) and calls it:
// signing, sealing, opening answers, following the server key and reading sealed event streams
// are the transport's, which knows no route of the API.

import { SealedTransport, publishedServerKey } from "./transport.js";
import { chatEventHandlers } from "./chat-events.js";
import { checkKeyConfirmation, normaliseCode, pairingProof } from "./e2e.js";
import { checkLoginConfirmation, deviceProof, readPairingStarted, startPairingBody, typedRegistrationBody } from "./pake.js";
import { ApiError, PageLoadError } from "./errors.js";

export class ApiClient {
  /**
   * @param {string} origin  API origin, e.g. "http://127.0.0.1:8765"
   * @param {{getDevice?, onServerKey?, transport?}} opts  getDevice and onServerKey: the
   *   transport's (transport.js); transport: one to use instead of a SealedTransport of its own
   */
  constructor(origin, { getDevice, onServerKey, transport = new SealedTransport(origin, { getDevice, onServerKey }) } = {}) {
    this.transport = transport;
  }

  get origin() {
    return this.transport.origin;
  }

  /** The last answer of GET /api/health (plain: what it says is a hint, never a key to pin). */
  get lastHealth() {
    return this.transport.lastHealth;
  }

  /** GET /api/health (public); it also sets the clock the signatures use. */
  health(opts) {
    return this.transport.health(opts);
  }

  /** The server key a health answer publishes (the last one by default), checked against a kid the page trusts. */
  publishedServerKey(health = this.lastHealth, expectedKid = null) {
    return publishedServerKey(health, expectedKid);
  }

  // ------------------------------------------------------------ devices

  /**
   * Registers a new device key with a pairing code (docs/E2E.md, "Pairing"). Every request is signed
   * by that new key and sealed to `device.serverKey`, the key this page will pin; the code itself
   * never travels, and the answer's key_confirmation must match before anything is kept.
   *   typed: false  a link or QR pinned the key: the request carries pairing_proof (HMAC keyed by the code)
   *   typed: true   the owner typed the code, nothing pinned the key: an OPAQUE login (pairWithTypedCode)
   */
  async registerDevice({ pairingCode, publicJwk, name, device, typed = false }) {
    if (typed) return this.pairWithTypedCode({ pairingCode, publicJwk, name, device });
    const kid = (await this.transport.serverKeyOf(device)).kid;
    const record = await this.transport.json("POST", "/api/auth/device", {
      json: { pairing_proof: await pairingProof(pairingCode, device.deviceId, kid), public_key: publicJwk, name },
      device,
    });
    await checkKeyConfirmation(record && record.key_confirmation, pairingCode, device.deviceId, kid);
    return record;
  }

  /**
   * A typed code (docs/E2E.md, "A typed code: an OPAQUE login"): the code is the password of an
   * OPAQUE login, so a key swapped on the path gets one online guess, never an offline search.
   *   1. POST /api/auth/pairing {request, public_key} -> {pairing_id, response}
   *   2. finishLogin with the normalised code, here: a wrong code (or an answer not from the server
   *      that holds the code) ends it, with pairing_invalid and nothing more sent
   *   3. POST /api/auth/device {pairing_id, finalization, device_proof, public_key, name}; the
   *      answer's key_confirmation is checked against the kid sealed to (e2e_key_mismatch)
   * The server's refusals (sealed, so believed): 423 pairing_locked, 403 pairing_used (the last
   * code was used), 403 pairing_expired (expired, or none), 403 pairing_invalid. The OPAQUE client
   * is loaded here, on first use (PageLoadError).
   */
  async pairWithTypedCode({ pairingCode, publicJwk, name, device }) {
    const kid = (await this.transport.serverKeyOf(device)).kid;
    const password = normaliseCode(pairingCode);
    const opaque = await this.loadOpaque();
    const { state, request } = await opaque.startLogin(password);
    const started = readPairingStarted(await this.transport.json("POST", "/api/auth/pairing", { json: startPairingBody({ request, publicJwk }), device }));
    const login = started && (await opaque.finishLogin({ state, response: started.response, password }));
    if (!login) {
      throw new ApiError(403, "pairing_invalid", "The OPAQUE login did not finish: the code is not right, or the answer is not from the server that made it.");
    }
    const proof = await deviceProof(login.sessionKey, device.deviceId, kid);
    const record = await this.transport.json("POST", "/api/auth/device", {
      json: typedRegistrationBody({ pairingId: started.pairingId, finalization: login.finalization, deviceProof: proof, publicJwk, name }),
      device,
    });
    await checkLoginConfirmation(record && record.key_confirmation, login.sessionKey, device.deviceId, kid);
    return record;
  }

  /**
   * The OPAQUE client (opaque.js), its WebAssembly compiled. A dynamic import: the build makes it a
   * file of its own (dist/chat/opaque.js), fetched only when a code is typed. Tests replace this.
   */
  async loadOpaque() {
    try {
      const opaque = await import("./opaque.js");
      await opaque.whenReady();
      return opaque;
    } catch (err) {
      throw new PageLoadError("opaque", err);
    }
  }

  /** GET /api/models: {default, models: [{name, engine, label, state, error, n_ctx}]}. */
  listModels() {
    return this.transport.json("GET", "/api/models");
  }

  whoAmI(opts) {
    return this.transport.json("GET", "/api/auth/device", opts);
  }

  /** POST /api/tokens {text, model?} -> {tokens, n_ctx, room, exact, model}: the message against what the model reads. */
  countTokens(text, { model, signal } = {}) {
    return this.transport.json("POST", "/api/tokens", { json: model ? { text, model } : { text }, signal });
  }

  listDevices() {
    return this.transport.json("GET", "/api/devices");
  }

  revokeDevice(id) {
    return this.transport.json("DELETE", `/api/devices/${encodeURIComponent(id)}`);
  }

  // ------------------------------------------------------------ chat

  /**
   * POST /api/chat and stream the reply. Handlers: onStart, onQueued, onLoading, onToken, onSnapshot, onDone,
   * onError (the stream's error event, as a StreamError), each with (data, eventId); onPing () for
   * every sealed frame that opens (one per server tick, empty or not: the stream is alive).
   * Resolves when the stream ends; throws ApiError before the stream starts, NetworkError if the
   * connection drops (kind "aborted" when the signal fired).
   */
  async chat({ conversationId, message, options, signal, parentId, regenerateOf, model, attachments }, handlers = {}) {
    // Branches: parentId undefined = the end of the current branch, null = a new first
    // message (an edit of the first one); regenerateOf = a reply to write again (no message).
    const payload = regenerateOf ? { regenerate_of: regenerateOf } : { message };
    if (parentId !== undefined && !regenerateOf) payload.parent_id = parentId;
    if (conversationId) payload.conversation_id = conversationId;
    if (options && Object.keys(options).length) payload.options = options;
    if (model) payload.model = model; // a name from listModels(); absent = the server's default
    if (Array.isArray(attachments) && attachments.length && !regenerateOf) payload.attachments = attachments; // ids from uploadAttachment
    const res = await this.transport.send("POST", "/api/chat", {
      json: payload,
      signal,
      headers: { Accept: "text/event-stream" },
    });
    return this.transport.readEvents(res, chatEventHandlers(handlers), { signal });
  }

  /**
   * GET /api/chat/<id>/stream: a reply's events after `lastEventId` (all without it), then the live
   * ones, with the same handlers as chat() and onOpen () once the stream is answered. The cursor
   * always goes in the query, which the signature covers, "from the start" too
   * (`?last_event_id=`, empty): a request without it could not be told from one whose cursor was
   * taken off (a Last-Event-ID header would need its own CORS allowance at Access). The stream must
   * follow on from that cursor (the transport's readEvents checks it).
   */
  async attach({ assistantId, lastEventId = null, signal }, handlers = {}) {
    const q = new URLSearchParams({ last_event_id: lastEventId || "" });
    const res = await this.transport.send("GET", `/api/chat/${encodeURIComponent(assistantId)}/stream?${q}`, {
      signal,
      headers: { Accept: "text/event-stream" },
    });
    if (handlers.onOpen) handlers.onOpen();
    return this.transport.readEvents(res, chatEventHandlers(handlers), { signal, after: lastEventId || null });
  }

  // ------------------------------------------------------------ attachments

  /**
   * POST /api/attachments {name, mime, data: base64} -> {id, name, kind, mime, size, pages?}: the file
   * is stored sealed and pending until a chat names it in `attachments`. Refusals: 413
   * attachment_too_large / payload_too_large, 415 attachment_type_not_allowed, 422 for a file whose
   * bytes are not what it says (each with its sentence).
   */
  uploadAttachment({ name, mime, data, conversationId = null }) {
    const json = { name, mime: mime || "", data };
    if (conversationId) json.conversation_id = conversationId;
    return this.transport.json("POST", "/api/attachments", { json });
  }

  /** GET /api/attachments/<id>: {id, name, kind, mime, size, pages, data: base64}. */
  getAttachment(id) {
    return this.transport.json("GET", `/api/attachments/${encodeURIComponent(id)}`);
  }

  /** DELETE /api/attachments/<id>: takes back one not sent yet (409 attachment_sent once it was). */
  deleteAttachment(id) {
    return this.transport.json("DELETE", `/api/attachments/${encodeURIComponent(id)}`);
  }

  cancel(assistantMessageId) {
    return this.transport.json("POST", `/api/chat/${encodeURIComponent(assistantMessageId)}/cancel`, { json: {} });
  }

  // ------------------------------------------------------------ history

  listConversations({ limit = 50, before = null } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== null && before !== undefined) q.set("before", String(before));
    return this.transport.json("GET", `/api/history?${q}`);
  }

  getConversation(id) {
    return this.transport.json("GET", `/api/history/${encodeURIComponent(id)}`);
  }

  deleteConversation(id) {
    return this.transport.json("DELETE", `/api/history/${encodeURIComponent(id)}`);
  }

  /** The owner's title; the model never replaces it. */
  renameConversation(id, title) {
    return this.transport.json("PATCH", `/api/history/${encodeURIComponent(id)}`, { json: { title } });
  }

  /** Show the branch through messageId by default, on every device; answers its current_leaf. */
  setCurrentLeaf(id, messageId) {
    return this.transport.json("PATCH", `/api/history/${encodeURIComponent(id)}`, { json: { current_leaf: messageId } });
  }

  /** POST, never GET ?q=: the words stay out of the URL, which the edge sees. */
  search(q, { limit = 20, signal } = {}) {
    return this.transport.json("POST", "/api/search", { json: { q, limit }, signal });
  }

  clearHistory() {
    return this.transport.json("DELETE", "/api/history");
  }

  /**
   * POST /api/transcribe (voice input): {audio: base64, mime} -> {text, seconds}. The
   * recording travels sealed and padded like every body; the owner's machine transcribes it.
   */
  transcribe({ audio, mime }, { signal } = {}) {
    return this.transport.json("POST", "/api/transcribe", { json: { audio, mime }, signal });
  }

  /** Returns {blob, filename}. */
  async exportHistory(format) {
    const res = await this.transport.send("GET", `/api/history/export?format=${encodeURIComponent(format)}`);
    // send() opened the sealed body; the type the file gets is the format's. The file name is the
    // one sealed in the answer's meta line: the opened answer carries it in place of the copy
    // outside the seal, which is never read.
    const blob = new Blob([await res.arrayBuffer()], { type: format === "markdown" ? "text/markdown" : "application/json" });
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
    return this.transport.json("POST", "/api/history/import", {
      body: text,
      headers: { "Content-Type": "application/json" },
    });
  }

  // ------------------------------------------------------------ settings

  getSettings() {
    return this.transport.json("GET", "/api/settings");
  }

  putSettings(settings) {
    return this.transport.json("PUT", "/api/settings", { json: settings });
  }
}
