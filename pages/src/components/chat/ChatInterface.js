// The /chat page's wiring, and nothing else: finds the device and the API, builds the components
// (which present) and the page's actions (app/: connection monitor, chat, history) around one
// session store, and connects them. Layers, as in the llama.cpp web UI without its framework:
//   lib/         stateless services (api, keystore, signing, sse, markdown) and pure logic
//                (connection state machine, describe(error)), the session store, the theme
//   app/         the page's actions: run services, update the store, tell components what to show
//   components/  the DOM: each shows what it is given and reports what the owner did

import { $ } from "../../lib/dom.js";
import { openSignIn } from "../../lib/access.js";
import { ApiClient } from "../../lib/api.js";
import { normalizeOrigin, rememberOrigin, resolveApiOrigin, takePairingFragment } from "../../lib/config.js";
import { composerNote, describe } from "../../lib/describe.js";
import { KeyStorageError } from "../../lib/errors.js";
import { forgetDevice, keepStorage, loadDevice, saveApiOrigin, storageKept, updateServerKey } from "../../lib/keystore.js";
import { createMarkdown } from "../../lib/markdown.js";
import { Session } from "../../lib/session.js";
import { applyTheme } from "../../lib/theme.js";
import { BranchController } from "../../app/branches.js";
import { ChatController } from "../../app/chat.js";
import { HistoryController } from "../../app/history.js";
import { ConnectionMonitor } from "../../app/monitor.js";
import { SearchController } from "../../app/search.js";
import { SettingsController } from "../../app/settings.js";
import { DevicesController } from "../../app/devices.js";
import { PairingController } from "../../app/pairing.js";
import { AttachmentController } from "../../app/attachments.js";
import { VoiceController } from "../../app/voice.js";
import { MessageFit } from "../../app/fit.js";
import { ConnectionStatus } from "./ConnectionStatus.js";
import { DeviceAuth } from "./DeviceAuth.js";
import { InputArea } from "./InputArea.js";
import { ModelPicker } from "./ModelPicker.js";
import { ModelStore } from "../../lib/models.js";
import { Layout } from "./Layout.js";
import { MessageList } from "./MessageList.js";
import { Sidebar } from "./Sidebar.js";
import { DevicesPanel, SettingsPanel, confirmDialog } from "./Panels.js";

export class ChatInterface {
  /**
   * @param {HTMLElement} root
   * @param {{keys?: {loadDevice, forgetDevice, saveApiOrigin, updateServerKey, keepStorage, storageKept}}} opts
   *   keys: where the device is kept (tests pass stand-ins; the page uses keystore.js)
   */
  constructor(root, { keys = {} } = {}) {
    this.root = root;
    this.session = new Session();
    this.keys = { loadDevice, forgetDevice, saveApiOrigin, updateServerKey, keepStorage, storageKept, ...keys };
  }

  async start() {
    applyTheme();
    const { root, session } = this;
    this.layout = new Layout(root, session);
    this.status = new ConnectionStatus($("#status", root), $("#status-actions", root), {
      onAction: (run) => this.act(run),
      onState: (state, text) => this.connectionChanged(state, text),
    });

    // Device, API origin, pairing link.
    const fragment = takePairingFragment();
    let device = null;
    let storageError = null;
    try {
      device = await this.keys.loadDevice();
    } catch (err) {
      if (!(err instanceof KeyStorageError)) throw err;
      storageError = err;
    }
    const newServer = Boolean(device && fragment.api && fragment.api !== device.apiOrigin);
    const { origin } = await resolveApiOrigin({
      fragmentApi: fragment.api,
      deviceOrigin: newServer ? null : device && device.apiOrigin,
    });
    rememberOrigin(origin);
    if (!storageError) this.keys.saveApiOrigin(origin).catch(() => {});
    session.set({ device, apiOrigin: origin });
    this.api = new ApiClient(origin, {
      getDevice: async () => session.state.device,
      // A server key rotation confirmed by a sealed answer (never by health): pin it with the device.
      onServerKey: async (serverKey) => {
        await this.keys.updateServerKey(serverKey).catch(() => {});
        if (session.state.device) session.set({ device: { ...session.state.device, serverKey } });
      },
    });
    this.build();

    if (storageError) this.showPairing({ reason: "storage", storageError, code: fragment.code, e2e: fragment.e2e });
    else if (!device || newServer) this.showPairing({ reason: newServer ? "new_server" : "first", code: fragment.code, e2e: fragment.e2e });
    else {
      session.set({ view: "chat" });
      this.history.restore(); // back to the conversation that was open, its draft, its unsent messages
      if (window.matchMedia && window.matchMedia("(min-width: 701px)").matches) this.input.focus(); // desktop only: no keyboard pops up on a phone
    }
    this.monitor.checkNow();
  }

  /** Components and actions, connected. */
  build() {
    const { root, session, api, layout } = this;
    const report = (err, context, opts) => this.report(err, context, opts);
    this.messages = new MessageList($("#messages", root), createMarkdown(window), $("#jump-latest", root));
    // A long message is counted first (app/fit.js): one the model cannot read whole is said, not sent, on the first press.
    this.input = new InputArea($("#composer", root), { onSend: async (t) => (await this.fit.allows(t)) && this.chat.send(t), onStop: () => this.chat.stop(), onDraft: (t) => this.history.saveDraft(t) }, session);
    this.voice = new VoiceController({ form: this.input.form, textarea: this.input.textarea, api, report }); // the microphone
    // The model picker: the models store, shown in the composer; replies go to its choice,
    // and the connection status names it.
    this.models = new ModelStore(api.origin);
    this.monitor = new ConnectionMonitor({ api, session, status: this.status, onEffects: (e) => this.onConnection(e),
      chosenModel: () => this.models.chosenEntry() });
    this.models.subscribe(() => this.monitor.modelChanged());
    // Attachments: the attach button and the chips of the files for the next message.
    this.attachments = new AttachmentController({ form: this.input.form, api, report, chosenModel: () => this.models.chosenEntry() });
    this.fit = new MessageFit({ api, chosenModel: () => this.models.chosenEntry(), say: (text) => this.input.setFitNote(text) });
    this.models.subscribe(() => this.attachments.modelChanged());
    this.messages.modelLabel = (name) => this.models.labelOf(name);
    this.picker = new ModelPicker($("#input-form", root) || $("#composer", root), this.models, {
      onChoose: (name) => this.models.choose(name),
      onOpen: () => this.models.refresh(api),
    });
    this.chat = new ChatController({
      chosenModel: () => this.models.state.chosen,
      attachments: this.attachments,
      api,
      session,
      messages: this.messages,
      report,
      refreshHistory: () => this.history.load(),
      reloadWhenBack: (id) => this.history.reloadWhenBack(id),
      recheck: () => this.monitor.checkNow(),
      keepUnsent: (text, view, sentence) => this.history.holdUnsent(text, view, sentence),
      dropUnsent: (id) => this.history.dropUnsent(id),
      onStarted: (d) => this.branches.started(d),
      onReplyEnded: (id) => {
        this.branches.ended(id);
        this.models.refresh(this.api); // a reply may have loaded one model and unloaded another
      },
    });
    this.branches = new BranchController({
      api, session, messages: this.messages, report, say: (text) => this.sidebar.say(text), chat: () => this.chat,
      untitled: () => setTimeout(() => this.history.load(), 4000), // the model's title, once written
    });
    const sidebarHandlers = {
      onSearch: (q) => this.search.input(q),
      onRename: (id, title) => this.history.rename(id, title),
      onNew: () => this.history.newConversation(),
      onSelect: (id) => this.history.open(id),
      onDelete: (id, title) => this.history.remove(id, title),
      onExport: (format) => this.history.exportAs(format),
      onImport: (file) => this.history.importFile(file),
      onClear: () => this.history.clear(),
      onLoadMore: () => this.history.load({ more: true }),
    };
    this.sidebar = new Sidebar($("#sidebar", root), sidebarHandlers, session);
    this.search = new SearchController({ api, sidebar: this.sidebar, report });
    this.history = new HistoryController({
      api,
      session,
      sidebar: this.sidebar,
      messages: this.messages,
      report,
      stopStream: () => this.chat.stop(),
      closeDrawer: () => layout.setDrawer(false),
      focusInput: () => this.input.focus(),
      confirm: confirmDialog,
      setDraft: (text) => this.input.setText(text),
      retrySend: (text, view, unsentId) => this.chat.retry(text, view, unsentId),
      showConversation: (conv) => this.branches.load(conv), // its current branch, with ‹ i/n › on messages with siblings
      // A reply still being written when its conversation opens: attach to its stream (resume).
      onRunningReply: (messageId, conversationId) => {
        if (typeof this.chat.reattach === "function") this.chat.reattach(messageId, conversationId);
      },
    });
    this.auth = new DeviceAuth($("#pairing-view", root), {
      actions: new PairingController({
        api,
        onPaired: (device, record) => this.paired(device, record),
        onSignIn: () => openSignIn(api.origin),
      }),
    });
    this.settings = new SettingsPanel({ actions: new SettingsController({ api, report }) });
    this.devices = new DevicesPanel({
      actions: new DevicesController({
        api,
        session,
        report,
        onForget: () => this.forgetAndPair("first"),
        onRevokedSelf: () => this.monitor.revoked(),
        storageKept: () => this.keys.storageKept(), // whether the browser may delete the key
      }),
    });

    $("#settings-button", root).addEventListener("click", () => this.settings.open());
    $("#devices-button", root).addEventListener("click", () => this.devices.open());
    document.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      if (session.state.stream && !document.querySelector("dialog[open]")) {
        e.preventDefault();
        this.chat.stop();
      } else if (layout.drawerOpen) {
        layout.setDrawer(false);
      }
    });
    this.monitor.listen(window, document);
    this.connectionChanged(this.status.state, this.status.text); // "Connecting…": nothing loaded yet
    // A pairing link opened in a tab where /chat/ is already open only changes the fragment.
    window.addEventListener("hashchange", () => this.pairingLinkOpened());
  }

  /** A #pair=…&api=… fragment arrived without a page load: fill the form (the owner still taps Pair). */
  pairingLinkOpened() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (!params.has("pair") && !params.has("api")) return;
    const api = params.get("api") ? normalizeOrigin(params.get("api")) : null;
    const { device, view, apiOrigin, pairReason } = this.session.state;
    if ((api && api !== apiOrigin) || (device && view !== "pairing")) {
      // Another server, or a paired browser: start over as a freshly opened link would.
      location.reload();
      return;
    }
    const { code, e2e } = takePairingFragment();
    if (code) this.showPairing({ reason: pairReason || "first", code, e2e });
  }

  /** A status button: Retry, Sign in, Pair again, Reload page. */
  act(run) {
    if (run === "retry") this.monitor.checkNow(true);
    else if (run === "signin") openSignIn(this.api.origin);
    else if (run === "repair") this.forgetAndPair("revoked");
    else if (run === "repair_key") this.forgetAndPair("untrusted");
    else if (run === "reload") location.reload(); // an old copy of the page (e2e_version_old)
  }

  /**
   * The status pill's state changed: the empty conversation, the unsent messages, the conversation
   * list (until it loads) and the composer's note say what it means for them.
   */
  connectionChanged(state, text) {
    if (!this.messages) return; // the first "Connecting…", before the page is built
    this.messages.setConnectionState(state);
    this.history.connectionChanged(state, text);
    this.input.setNote(composerNote(state, text));
  }

  /** What a connection decision means for the rest of the page. */
  onConnection({ input, pairing, ready }) {
    if (input !== undefined) this.input.setEnabled(input);
    if (pairing) this.showPairing({ reason: pairing });
    if (ready) this.history.onReady();
    if (ready) this.models.refresh(this.api);
    if (ready) this.voice.refresh(this.api.lastHealth); // the microphone shows when the server says speech is on
  }

  /** The sentence for a failed request, shown where it failed; the page follows what it means. */
  report(err, context = "inline", { stopped = false } = {}) {
    const { text, effect } = describe(err, { context, stopped, apiOrigin: this.session.state.apiOrigin });
    if (effect) this.monitor.noteError(err);
    return text;
  }

  showPairing(opts) {
    this.session.set({ view: "pairing", pairReason: opts.reason });
    this.auth.show(opts);
  }

  paired(device, record) {
    // The key is kept now: ask the browser not to delete it when space runs low (the Devices
    // dialog says whether it agreed). Asked only after a pairing that worked.
    this.keys.keepStorage().catch(() => {});
    this.session.set({ device, conversationId: null, view: "chat", pairReason: null });
    this.messages.clear();
    this.layout.showPairBanner((record && record.name) || device.name, device.fingerprint);
    this.input.focus();
    this.monitor.checkNow();
  }

  /**
   * Deletes this browser's key and shows the pairing form. Only ever on the owner's click (Pair
   * again on a believed revocation or a lost server key, Forget in the devices dialog): an answer
   * that is not sealed never gets here (describe.js gives it no such button and no effect).
   */
  async forgetAndPair(reason) {
    try {
      await this.keys.forgetDevice();
    } catch {
      /* nothing stored */
    }
    this.history.memory.forget(this.api.origin); // drafts and unsent text go with the device
    this.session.set({ device: null });
    this.messages.clear();
    this.showPairing({ reason });
    this.monitor.checkNow();
  }
}

// Exported for tests of the markup contract.
export const REQUIRED_IDS = [
  "status", "status-actions", "sidebar", "sidebar-toggle", "scrim", "pairing-view", "chat-view", "messages",
  "jump-latest", "composer", "settings-button", "devices-button", "pair-banner", "pair-banner-close",
  "pair-banner-name", "fingerprint", "api-origin",
];
