// The /chat screen and its flow: finds the API, checks health and the device, shows pairing or
// the chat, streams replies, and keeps the connection status honest.

import { h, $, downloadBlob } from "../../lib/dom.js";
import { ApiClient, ApiError, NetworkError, noteSignInStarted } from "../../lib/api.js";
import { isLoopbackOrigin, rememberOrigin, resolveApiOrigin, takePairingFragment } from "../../lib/config.js";
import { KeyStorageError, saveApiOrigin } from "../../lib/keystore.js";
import { createMarkdown } from "../../lib/markdown.js";
import { ConnectionStatus } from "./ConnectionStatus.js";
import { DeviceAuth } from "./DeviceAuth.js";
import { InputArea } from "./InputArea.js";
import { MessageList } from "./MessageList.js";
import { Sidebar } from "./Sidebar.js";
import { DevicesPanel, SettingsPanel, applyTheme, confirmDialog } from "./Panels.js";

const POLL_OK_MS = 15_000;
const POLL_LOADING_MS = 3_000;
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export class ChatInterface {
  constructor(root) {
    this.root = root;
    this.api = null;
    this.device = null;
    this.conversationId = null;
    this.stream = null;
    this.backoffMs = 0;
    this.pollTimer = null;
    this.countdownTimer = null;
    this.checking = null;
    this.wasReady = false;
    this.pendingReload = null;
    this.historyLoaded = false;
    this.nextBefore = null;
    this.view = "loading";
  }

  // ---------------------------------------------------------------- setup

  async start() {
    applyTheme();
    const r = this.root;
    this.status = new ConnectionStatus($("#status", r), $("#status-actions", r));
    this.md = createMarkdown(window);
    this.messages = new MessageList($("#messages", r), this.md, $("#jump-latest", r));
    this.input = new InputArea($("#composer", r), { onSend: (t) => this.send(t), onStop: () => this.stop() });
    this.sidebar = new Sidebar($("#sidebar", r), {
      onNew: () => this.newConversation(),
      onSelect: (id) => this.openConversation(id),
      onDelete: (id, title) => this.deleteConversation(id, title),
      onExport: (fmt) => this.exportHistory(fmt),
      onImport: (file) => this.importHistory(file),
      onClear: () => this.clearHistory(),
      onLoadMore: () => this.loadConversations({ more: true }),
    });
    this.auth = new DeviceAuth($("#pairing-view", r), {
      getApi: () => this.api,
      onPaired: (device, record) => this.paired(device, record),
      onSignIn: () => this.openSignIn(),
    });
    const describeError = (err) => this.describeError(err);
    this.settings = new SettingsPanel({ getApi: () => this.api, describeError });
    this.devices = new DevicesPanel({
      getApi: () => this.api,
      getDevice: () => this.device,
      describeError,
      onForget: () => this.forgetAndPair("first"),
      onRevokedSelf: () => this.deviceRevoked(),
    });

    $("#settings-button", r).addEventListener("click", () => this.settings.open());
    $("#devices-button", r).addEventListener("click", () => this.devices.open());
    const toggle = $("#sidebar-toggle", r);
    toggle.addEventListener("click", () => this.setDrawer(!r.classList.contains("drawer-open")));
    $("#scrim", r).addEventListener("click", () => this.setDrawer(false));
    $("#pair-banner-close", r).addEventListener("click", () => ($("#pair-banner", r).hidden = true));

    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        if (this.stream && !document.querySelector("dialog[open]")) {
          e.preventDefault();
          this.stop();
        } else if (r.classList.contains("drawer-open")) {
          this.setDrawer(false);
        }
      }
    });
    window.addEventListener("focus", () => this.checkNow());
    window.addEventListener("online", () => this.checkNow());
    window.addEventListener("offline", () => this.showOffline());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.checkNow();
    });

    // Device, API origin, pairing link.
    const fragment = takePairingFragment();
    let storageError = null;
    try {
      this.device = await this.auth.load();
    } catch (err) {
      if (!(err instanceof KeyStorageError)) throw err;
      storageError = err;
    }
    let pairReason = null;
    if (this.device && fragment.api && fragment.api !== this.device.apiOrigin) {
      pairReason = "new_server";
    }
    const { origin } = await resolveApiOrigin({
      fragmentApi: fragment.api,
      deviceOrigin: pairReason ? null : this.device && this.device.apiOrigin,
    });
    this.api = new ApiClient(origin, { getDevice: async () => this.device });
    rememberOrigin(origin);
    if (!storageError) saveApiOrigin(origin).catch(() => {});
    $("#api-origin", r).textContent = origin;

    if (storageError) {
      this.showPairing({ reason: "storage", storageError, code: fragment.code });
    } else if (!this.device || pairReason) {
      this.showPairing({ reason: pairReason || "first", code: fragment.code });
    } else {
      this.showChat();
    }
    this.checkNow();
  }

  setView(view) {
    this.view = view;
    this.root.dataset.view = view;
    $("#pairing-view", this.root).hidden = view !== "pairing";
    $("#chat-view", this.root).hidden = view !== "chat";
    if (view !== "chat") this.setDrawer(false);
  }

  setDrawer(open) {
    this.root.classList.toggle("drawer-open", open);
    $("#sidebar-toggle", this.root).setAttribute("aria-expanded", open ? "true" : "false");
    if (open) $("#new-conversation", this.root).focus();
  }

  showPairing(opts) {
    this.setView("pairing");
    this.auth.show(opts);
  }

  showChat() {
    this.setView("chat");
  }

  paired(device, record) {
    this.device = device;
    this.historyLoaded = false;
    this.messages.clear();
    this.conversationId = null;
    $("#fingerprint", this.root).textContent = device.fingerprint;
    $("#pair-banner-name", this.root).textContent = (record && record.name) || device.name;
    $("#pair-banner", this.root).hidden = false;
    this.showChat();
    this.input.focus();
    this.checkNow();
  }

  async forgetAndPair(reason) {
    try {
      await this.auth.forget();
    } catch {
      /* nothing stored */
    }
    this.device = null;
    this.sidebar.setConversations([]);
    this.messages.clear();
    this.showPairing({ reason });
    this.checkNow();
  }

  deviceRevoked() {
    this.status.set("revoked", "Device revoked", {
      actions: [{ id: "status-repair", label: "Pair again", onClick: () => this.forgetAndPair("revoked") }],
    });
    this.input.setEnabled(false);
    this.schedule(null);
  }

  openSignIn() {
    noteSignInStarted(this.api.origin);
    window.open(this.api.origin + "/api/health", "_blank", "noopener,noreferrer");
  }

  // ---------------------------------------------------------------- connection

  schedule(ms) {
    clearTimeout(this.pollTimer);
    clearInterval(this.countdownTimer);
    this.status.setNote("");
    if (ms === null) return;
    this.pollTimer = setTimeout(() => this.check(), ms);
  }

  scheduleRetry(showCountdown = true) {
    this.backoffMs = this.backoffMs ? Math.min(this.backoffMs * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    const due = Date.now() + this.backoffMs;
    this.schedule(this.backoffMs);
    if (!showCountdown) return;
    const tick = () => {
      const s = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      if (this.status.state === "reconnecting") this.status.set("reconnecting", `Reconnecting in ${s}s…`, { actions: this.retryAction() });
      else this.status.setNote(`Retrying in ${s}s…`);
    };
    tick();
    this.countdownTimer = setInterval(tick, 1000);
  }

  retryAction() {
    return [{ id: "status-retry", label: "Retry now", onClick: () => this.checkNow(true) }];
  }

  checkNow(resetBackoff = false) {
    if (resetBackoff) this.backoffMs = 0;
    if (!this.api) return;
    this.check();
  }

  showOffline() {
    this.status.set("offline", "Browser offline", { note: "Waiting for the network…" });
    this.schedule(null);
  }

  /** One health (and device) check; decides the status and when to check next. */
  async check() {
    if (this.checking) return this.checking;
    this.checking = this._check().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  async _check() {
    clearTimeout(this.pollTimer);
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      this.showOffline();
      return;
    }
    if (!this.status.state || this.status.state === "connecting") this.status.set("connecting", "Connecting…");
    let health;
    try {
      health = await this.api.health();
    } catch (err) {
      this.connectionFailed(err);
      return;
    }
    // The server answers. Now the device.
    if (this.view === "pairing") {
      this.backoffMs = 0;
      const reason = this.auth.root.querySelector("#pair-reason");
      if (reason && reason.dataset.reason === "revoked") {
        this.status.set("revoked", "Device revoked", { note: "Pair it again below." });
      } else {
        this.status.set("unpaired", "Device not paired", { note: "Enter a pairing code below." });
      }
      this.schedule(POLL_OK_MS);
      return;
    }
    if (this.device) {
      try {
        const me = await this.api.whoAmI();
        if (me && me.status === "revoked") {
          this.deviceRevoked();
          return;
        }
      } catch (err) {
        if (this.handleAuthError(err)) return;
        this.connectionFailed(err);
        return;
      }
    }
    this.backoffMs = 0;
    this.input.setEnabled(true);
    const model = (health && health.model) || {};
    const name = model.name || "model";
    if (model.state === "ready") {
      this.status.set("ready", `Ready — ${name}`);
      this.schedule(POLL_OK_MS);
    } else if (model.state === "loading") {
      this.status.set("loading", "Model loading…", { note: name !== "model" ? name : "" });
      this.schedule(POLL_LOADING_MS);
    } else if (model.state === "error") {
      this.status.set("model_error", `Model failed: ${model.error || "the server gave no reason"}`, { actions: this.retryAction() });
      this.schedule(POLL_OK_MS);
    } else if (model.state === "disabled") {
      this.status.set("model_error", `Model failed: ${model.error || "no model is configured on the server"}`, { actions: this.retryAction() });
      this.schedule(POLL_OK_MS);
    } else {
      this.status.set("ready", `Ready — ${name}`);
      this.schedule(POLL_OK_MS);
    }
    this.wasReady = true;
    if (!this.historyLoaded) this.loadConversations();
    if (this.pendingReload && !this.stream) {
      const id = this.pendingReload;
      this.pendingReload = null;
      if (id === this.conversationId) this.openConversation(id, { quiet: true });
    }
  }

  /** Device-level answers that change the screen. Returns true when handled. */
  handleAuthError(err) {
    if (!(err instanceof ApiError)) return false;
    switch (err.code) {
      case "device_revoked":
        this.deviceRevoked();
        return true;
      case "device_unknown":
        this.status.set("unpaired", "Device not paired", { note: "The server does not know this browser's key." });
        this.showPairing({ reason: "unknown" });
        this.schedule(POLL_OK_MS);
        return true;
      case "access_denied":
        this.showAccess("Cloudflare Access sign-in needed");
        return true;
      default:
        return false;
    }
  }

  showAccess(text) {
    this.status.set("access", text, {
      actions: [
        { id: "access-signin", label: "Sign in (new tab)", onClick: () => this.openSignIn() },
        { id: "status-retry", label: "Retry", onClick: () => this.checkNow(true) },
      ],
    });
    this.scheduleRetry();
  }

  connectionFailed(err) {
    if (err instanceof NetworkError && err.kind === "offline") {
      this.showOffline();
      return;
    }
    if (err instanceof NetworkError && err.kind === "access") {
      this.showAccess("Cloudflare Access sign-in needed");
      return;
    }
    if (err instanceof ApiError && err.code === "access_denied") {
      this.showAccess("Cloudflare Access sign-in needed");
      return;
    }
    // A first blip after things were fine: "reconnecting"; if it persists, say why.
    if (this.wasReady && (this.status.state === "ready" || this.status.state === "loading" || this.status.state === "model_error")) {
      this.status.set("reconnecting", "Reconnecting…", { actions: this.retryAction() });
      this.scheduleRetry();
      return;
    }
    if (err instanceof ApiError) {
      // The server answered, but not well (5xx, 429, 503 without a model state…).
      this.status.set("reconnecting", `Reconnecting… (${err.message})`, { actions: this.retryAction() });
      if (err.retryAfter) this.backoffMs = Math.min(err.retryAfter * 1000, BACKOFF_MAX_MS) / 2;
      this.scheduleRetry();
      return;
    }
    if (isLoopbackOrigin(this.api.origin)) {
      this.status.set("unreachable", "Server not reachable — start it with `privchat serve`", { actions: this.retryAction() });
    } else if (err instanceof NetworkError && err.kind === "tunnel") {
      // Cloudflare answered, privchat did not. The sign-in stays at hand: an unfinished sign-in looks the same.
      this.status.set("tunnel", "Your computer is not reachable through the tunnel: is it awake, with privchat and cloudflared running?", {
        actions: [...this.retryAction(), { id: "tunnel-signin", label: "Sign in again (new tab)", onClick: () => this.openSignIn() }],
      });
    } else {
      this.status.set("unreachable", "The API could not be reached: check the network connection", { actions: this.retryAction() });
    }
    this.scheduleRetry();
  }

  /** A sentence for an error, for places that show it inline. Also updates the screen. */
  describeError(err) {
    if (this.handleAuthError(err)) {
      if (err.code === "device_revoked") return "This device was revoked. Pair it again to continue.";
      if (err.code === "device_unknown") return "This device is not paired with the server.";
      return "Cloudflare Access sign-in needed: sign in in a new tab, then retry.";
    }
    if (err instanceof NetworkError) {
      if (err.kind !== "aborted") this.checkNow();
      return err.message;
    }
    if (err instanceof ApiError) {
      if (err.code === "rate_limited" || err.code === "queue_full") {
        return `${err.message}${err.retryAfter ? ` Try again in ${err.retryAfter} s.` : ""}`;
      }
      if (err.code === "clock_skew") return "This device's clock is too far off and could not be corrected. Check the system time.";
      return err.message;
    }
    return String(err && err.message ? err.message : err);
  }

  // ---------------------------------------------------------------- chat

  send(text) {
    if (this.stream) return false;
    if (!this.device) return false;
    const userView = this.messages.add({ role: "user", content: text, status: "sending" });
    this.runStream(text, userView);
    return true;
  }

  async runStream(text, userView) {
    const ctrl = new AbortController();
    const stream = { ctrl, assistantId: null, started: false, stopped: false };
    this.stream = stream;
    this.input.setStreaming(true);
    const reply = this.messages.add({ role: "assistant", content: "", status: "streaming" });
    const wasNew = !this.conversationId;
    try {
      await this.api.chat(
        { conversationId: this.conversationId, message: text, signal: ctrl.signal },
        {
          onStart: (d) => {
            stream.started = true;
            stream.assistantId = d.assistant_message_id;
            this.conversationId = d.conversation_id;
            userView.setId(d.user_message_id);
            userView.setStatus("complete");
            reply.setId(d.assistant_message_id);
            this.sidebar.setActive(this.conversationId);
            if (wasNew) this.loadConversations();
          },
          onToken: (d) => {
            if (d && typeof d.text === "string") reply.append(d.text);
          },
          onDone: (d) => {
            const reason = d && d.finish_reason;
            if (reason === "interrupted") {
              // The server stopped the generation (it is shutting down); the partial reply is saved.
              reply.setStatus("interrupted");
              this.pendingReload = this.conversationId;
              setTimeout(() => this.checkNow(), 300);
            } else {
              reply.setStatus(reason === "cancelled" || stream.stopped ? "cancelled" : "complete");
            }
            reply.setMeta(d || {});
          },
          onError: (d) => {
            reply.setStatus("error", `The model stopped with an error: ${(d && d.message) || "no reason given"}`);
          },
        },
      );
    } catch (err) {
      if (stream.stopped || (err instanceof NetworkError && err.kind === "aborted")) {
        if (!stream.started) {
          this.messages.removeView(reply);
          userView.setFailed("Stopped before the server answered.", () => this.retry(text, userView));
        } else {
          reply.setStatus("cancelled");
        }
      } else if (!stream.started) {
        // Nothing reached the model: keep the text, offer Retry.
        this.messages.removeView(reply);
        userView.setFailed(this.describeError(err), () => this.retry(text, userView));
      } else {
        reply.setStatus("interrupted");
        this.pendingReload = this.conversationId;
        this.checkNow();
      }
    } finally {
      if (this.stream === stream) this.stream = null;
      this.input.setStreaming(false);
      if (stream.started && !wasNew) this.loadConversations();
    }
  }

  retry(text, userView) {
    if (this.stream) return;
    this.messages.removeView(userView);
    this.send(text);
  }

  async stop() {
    const stream = this.stream;
    if (!stream || stream.stopped) return;
    stream.stopped = true;
    if (stream.assistantId) {
      const timeout = new Promise((resolve) => setTimeout(resolve, 2000));
      await Promise.race([this.api.cancel(stream.assistantId).catch(() => null), timeout]);
    }
    stream.ctrl.abort();
  }

  // ---------------------------------------------------------------- conversations

  async loadConversations({ more = false } = {}) {
    if (!this.device) return;
    try {
      const res = await this.api.listConversations({ limit: 50, before: more ? this.nextBefore : null });
      this.historyLoaded = true;
      this.nextBefore = res.next_before ?? null;
      this.sidebar.setConversations(res.conversations || [], { append: more, hasMore: this.nextBefore !== null });
      this.sidebar.setActive(this.conversationId);
    } catch (err) {
      this.sidebar.say(this.describeError(err));
    }
  }

  newConversation() {
    if (this.stream) this.stop();
    this.conversationId = null;
    this.messages.clear();
    this.sidebar.setActive(null);
    this.setDrawer(false);
    this.input.focus();
  }

  async openConversation(id, { quiet = false } = {}) {
    if (this.stream) {
      if (quiet) return;
      await this.stop();
    }
    try {
      const conv = await this.api.getConversation(id);
      this.conversationId = conv.id || id;
      this.messages.show(conv.messages || []);
      this.sidebar.setActive(this.conversationId);
      if (!quiet) {
        this.setDrawer(false);
        this.input.focus();
      }
    } catch (err) {
      const text = this.describeError(err);
      if (err instanceof ApiError && err.code === "not_found") this.loadConversations();
      this.sidebar.say(text);
    }
  }

  async deleteConversation(id, title) {
    const ok = await confirmDialog({
      title: "Delete this conversation?",
      text: `“${title}” and all its messages are deleted from the server for good. Export first if you want to keep a copy.`,
      confirmLabel: "Delete",
    });
    if (!ok) return;
    try {
      await this.api.deleteConversation(id);
      if (id === this.conversationId) this.newConversation();
      this.sidebar.say("Conversation deleted.");
      await this.loadConversations();
    } catch (err) {
      this.sidebar.say(this.describeError(err));
    }
  }

  async clearHistory() {
    const count = this.sidebar.items.length;
    const ok = await confirmDialog({
      title: "Clear all history?",
      text: `Every conversation${count ? ` (${count}${this.nextBefore !== null ? "+" : ""})` : ""} and every message is deleted from the server for good. This cannot be undone; export first if you want a copy. Settings and paired devices stay.`,
      confirmLabel: "Delete everything",
      id: "clear-dialog",
    });
    if (!ok) return;
    try {
      const res = await this.api.clearHistory();
      this.newConversation();
      this.sidebar.say(`History cleared${res && Number.isFinite(res.deleted) ? ` (${res.deleted} conversations deleted)` : ""}.`);
      await this.loadConversations();
    } catch (err) {
      this.sidebar.say(this.describeError(err));
    }
  }

  async exportHistory(format) {
    this.sidebar.say("Preparing export…");
    try {
      const { blob, filename } = await this.api.exportHistory(format);
      downloadBlob(blob, filename);
      this.sidebar.say(`Exported ${filename}.`);
    } catch (err) {
      this.sidebar.say(this.describeError(err));
    }
  }

  async importHistory(file) {
    this.sidebar.say(`Importing ${file.name}…`);
    try {
      const text = await file.text();
      JSON.parse(text); // a clear message for a wrong file before sending it
      const res = await this.api.importHistory(text);
      this.sidebar.say(
        `Imported ${res.imported_conversations} conversations, ${res.imported_messages} messages${res.skipped ? `, skipped ${res.skipped}` : ""}.`,
      );
      await this.loadConversations();
    } catch (err) {
      this.sidebar.say(err instanceof SyntaxError ? "That file is not a privchat JSON export." : this.describeError(err));
    }
  }
}

// Exported for tests of the markup contract.
export const REQUIRED_IDS = [
  "status", "status-actions", "sidebar", "sidebar-toggle", "scrim", "pairing-view", "chat-view", "messages",
  "jump-latest", "composer", "settings-button", "devices-button", "pair-banner", "pair-banner-close",
  "pair-banner-name", "fingerprint", "api-origin",
];
