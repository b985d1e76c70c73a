// The conversations kept on the server: the list (paged, 50 at a time), opening one, starting a new
// one, delete, clear all, export and import. The open conversation and the paging cursor live in
// the session store; the sidebar shows the list and the outcome of each action.
//
// Reopen where you were: the open conversation, the message box's draft per conversation and the
// messages that could not be sent outlive the tab (PageMemory, per API origin). A reload goes back
// to the conversation that was open (a new one when it is gone), with its draft, its unsent messages
// (with Send now and Discard) and, when its last reply is still being written, onRunningReply(messageId).
//
// A message kept unsent says why for the connection as it is now : "offline" while the
// browser is, Send now once the server answers, nothing to send with on a revoked device; Discard
// always. It stays where it was written (after the message it followed), and Send now sends it as
// the newest message, where the reply then appears.

import { ApiError } from "../lib/errors.js";
import { cannotLoad, notLoaded, unsentNote } from "../lib/describe.js";
import { downloadBlob } from "../lib/dom.js";
import { PageMemory } from "../lib/session.js";

const PAGE_SIZE = 50;

export class HistoryController {
  /**
   * @param {{api, session, sidebar, messages, report: (err, context?: string) => string,
   *          stopStream: () => Promise<void>, closeDrawer: () => void, focusInput: () => void,
   *          confirm: (opts: {title, text, confirmLabel, id?}) => Promise<boolean>,
   *          download?: (blob: Blob, filename: string) => void}} deps
   *   confirm  asks before deleting (the page's confirmDialog)
   * @param {{memory?: PageMemory, setDraft?: (text: string) => void,
   *          retrySend?: (text: string, view: object, unsentId: string) => void,
   *          onRunningReply?: (assistantMessageId: string, conversationId: string) => void}} [more]
   *   memory          what outlives the tab (localStorage per API origin)
   *   setDraft        puts a conversation's draft in the message box
   *   retrySend       sends an unsent message again (the chat's retry; it drops the kept copy)
   *   onRunningReply  the open conversation's last reply is still being written (attach to it)
   */
  constructor({
    api, session, sidebar, messages, report, stopStream, closeDrawer, focusInput, confirm, download = downloadBlob,
    memory = new PageMemory(), setDraft = () => {}, retrySend = () => {}, onRunningReply = () => {},
    showConversation = (conv) => {
      this.messages.show(conv.messages || []);
      return conv.messages || [];
    },
  }) {
    Object.assign(this, { api, session, sidebar, messages, report, stopStream, closeDrawer, focusInput, confirm, download });
    // Shows a loaded conversation (its current branch: app/branches.js) and returns the messages shown.
    this.showConversation = showConversation;
    Object.assign(this, { memory, setDraft, retrySend, onRunningReply });
    this.conversations = [];
    this.loaded = false;
    this.connection = { state: null, text: "" }; // the status pill's, as connectionChanged last heard it
    this.unsentShown = []; // [{view, id, text, reason}]: kept unsent messages on screen
    this.pendingReload = null;
    this.reopenId = null;
    this.currentId = session.state.conversationId;
    // Another device (or none): its history is loaded afresh.
    session.subscribe(["device"], (st) => {
      this.loaded = false;
      if (!st.device) this.show([], null);
      this.sayNotLoaded();
    });
    session.subscribe(["conversationId"], (st) => this.conversationChanged(st.conversationId));
  }

  get origin() {
    return this.session.state.apiOrigin || "";
  }

  /** Remembers the open conversation; the message box shows its draft. */
  conversationChanged(id) {
    const prev = this.currentId;
    this.currentId = id;
    this.memory.setOpenConversation(this.origin, id);
    if (prev === null && id && this.session.state.stream) {
      // A new conversation got its id from its first message: what is in the box and the messages
      // not sent on that page belong to it now.
      this.memory.moveDraft(this.origin, null, id);
      this.memory.moveUnsent(this.origin, null, id);
      return;
    }
    this.setDraft(this.memory.draft(this.origin, id));
  }

  /** The message box changed: its text is this conversation's draft (empty after a Send). */
  saveDraft(text) {
    this.memory.setDraft(this.origin, this.session.state.conversationId, text);
  }

  /** A message could not be sent: keep it (its text and conversation) until it is sent. */
  keepUnsent(text, conversationId = this.session.state.conversationId) {
    return this.memory.keepUnsent(this.origin, conversationId, text);
  }

  dropUnsent(id) {
    this.memory.dropUnsent(this.origin, id);
  }

  /**
   * The chat could not send `view`'s text: keep it, after the message it followed, and show it with
   * `reason` (the failure's own words) until the connection changes. Returns true: it is handled here.
   */
  holdUnsent(text, view, reason) {
    const views = this.messages.views;
    const before = views.slice(0, Math.max(0, views.indexOf(view))).reverse().find((v) => v.id && v.status !== "failed");
    const id = this.memory.keepUnsent(this.origin, this.session.state.conversationId, text, Date.now(), before ? before.id : null);
    this.track({ view, id, text, reason });
    return true;
  }

  /** Shows the kept unsent messages of a conversation, each after the message it followed. */
  showUnsent(conversationId) {
    this.unsentShown = this.unsentShown.filter((u) => u.view.el.isConnected);
    for (const m of this.memory.unsent(this.origin, conversationId)) {
      if (this.unsentShown.some((u) => u.id === m.id)) continue;
      // Where it was written: after the message it followed, first when it was the first; at the end
      // when that message is not on screen (another branch) or was not recorded.
      const after = m.after === null ? "start" : m.after ? this.messages.views.find((v) => v.id === m.after) : undefined;
      const view = this.messages.add({ role: "user", content: m.text, status: "failed" }, { after });
      this.track({ view, id: m.id, text: m.text, reason: null });
    }
  }

  track(entry) {
    this.unsentShown = [...this.unsentShown.filter((u) => u.view.el.isConnected && u.view !== entry.view), entry];
    this.noteUnsent(entry);
  }

  /** The note and buttons of an unsent message: the failure's words until the connection changes, then its state's. */
  noteUnsent(entry) {
    const { state, text } = this.connection;
    const now = unsentNote(state || "ready", text); // no state heard yet (tests, a page being built): as if ready
    const note = entry.reason ? { text: entry.reason, canSend: now.canSend } : now;
    entry.view.setFailed(note.text, note.canSend ? () => this.sendUnsent(entry) : null, () => this.discardUnsent(entry));
  }

  /** Send now: it leaves its place and goes out as the newest message (the chat drops the kept copy). */
  sendUnsent(entry) {
    if (this.session.state.stream) return;
    this.unsentShown = this.unsentShown.filter((u) => u !== entry);
    this.retrySend(entry.text, entry.view, entry.id);
  }

  discardUnsent(entry) {
    this.unsentShown = this.unsentShown.filter((u) => u !== entry);
    this.dropUnsent(entry.id);
    this.messages.removeView(entry.view);
  }

  /**
   * The connection status changed (ConnectionStatus's state and sentence): unsent messages say the
   * reason of now, and until the list has loaded once, the sidebar and the empty conversation say
   * why it has not (not "No conversations yet": the history is not lost, only out of reach).
   */
  connectionChanged(state, text = "") {
    this.connection = { state, text };
    for (const entry of this.unsentShown) {
      entry.reason = null;
      if (entry.view.el.isConnected) this.noteUnsent(entry);
    }
    this.sayNotLoaded();
  }

  sayNotLoaded() {
    if (this.loaded || !this.session.state.device) {
      this.sidebar.setUnavailable(null);
      this.messages.setUnavailable(null);
      return;
    }
    const { state, text } = this.connection;
    this.showNotLoaded(notLoaded(state, text));
  }

  showNotLoaded({ list, title, text }) {
    this.sidebar.setUnavailable(list);
    this.messages.setUnavailable(title ? { title, text } : null);
  }

  /**
   * Start-up: back to the conversation that was open with this API (loaded from the server when it
   * answers, see onReady), with its draft and its unsent messages; a new conversation otherwise.
   */
  restore() {
    const id = this.memory.openConversation(this.origin);
    this.reopenId = id;
    this.messages.clear();
    if (id) this.session.set({ conversationId: id });
    else this.setDraft(this.memory.draft(this.origin, this.session.state.conversationId));
    this.showUnsent(this.session.state.conversationId);
  }

  show(conversations, nextBefore) {
    this.conversations = conversations;
    this.session.set({ nextBefore });
    this.sidebar.setConversations(conversations, { hasMore: nextBefore !== null });
  }

  async load({ more = false } = {}) {
    if (!this.session.state.device) return;
    try {
      const res = await this.api.listConversations({ limit: PAGE_SIZE, before: more ? this.session.state.nextBefore : null });
      this.loaded = true;
      this.sayNotLoaded();
      const list = more ? [...this.conversations] : [];
      for (const c of res.conversations || []) {
        if (!list.some((i) => i.id === c.id)) list.push(c);
      }
      this.show(list, res.next_before ?? null);
    } catch (err) {
      const text = this.report(err);
      this.sidebar.say(text);
      if (!this.loaded) this.showNotLoaded(cannotLoad(text));
    }
  }

  /** The server and this device are fine again: load what was missed. */
  onReady() {
    if (!this.loaded) this.load();
    if (this.reopenId && !this.session.state.stream) {
      const id = this.reopenId;
      if (id !== this.session.state.conversationId) this.reopenId = null; // the owner went elsewhere
      else {
        this.reopening = this.open(id, { quiet: true, reopen: true }).then((result) => {
          if (result !== "failed" && this.reopenId === id) this.reopenId = null;
          return result;
        });
        return;
      }
    }
    const id = this.pendingReload;
    if (id && !this.session.state.stream) {
      this.pendingReload = null;
      if (id === this.session.state.conversationId) this.open(id, { quiet: true });
    }
  }

  /** A reply was cut short: reload its conversation once the server is back. */
  reloadWhenBack(id) {
    this.pendingReload = id;
  }

  newConversation({ focus = true } = {}) {
    if (this.session.state.stream) this.stopStream();
    this.reopenId = null;
    this.session.set({ conversationId: null });
    this.messages.clear();
    this.showUnsent(null);
    if (!focus) return;
    this.closeDrawer();
    this.focusInput();
  }

  /**
   * Loads a conversation from the server and shows it, with the messages of it not sent yet.
   * Returns "opened", "gone" (not found), "failed" or "busy" (a reply streams and quiet was asked).
   *   quiet   a reload the owner did not ask for: the drawer and focus stay
   *   reopen  the start-up reopen: a conversation that is gone falls back to a new one, silently
   */
  async open(id, { quiet = false, reopen = false } = {}) {
    if (this.session.state.stream) {
      if (quiet) return "busy";
      await this.stopStream();
    }
    if (!reopen) this.reopenId = null;
    try {
      const conv = await this.api.getConversation(id);
      const convId = conv.id || id;
      if (reopen && this.session.state.conversationId !== id) return "opened"; // the owner went elsewhere meanwhile
      this.session.set({ conversationId: convId });
      const list = this.showConversation(conv);
      this.showUnsent(convId);
      const last = list[list.length - 1];
      if (last && last.role === "assistant" && last.status === "streaming" && last.id) this.onRunningReply(last.id, convId);
      if (!quiet) {
        this.closeDrawer();
        this.focusInput();
      }
      return "opened";
    } catch (err) {
      const gone = err instanceof ApiError && err.code === "not_found";
      if (reopen && gone) {
        // Deleted since (here or on another device): a new conversation, and nothing said.
        this.memory.moveUnsent(this.origin, id, null);
        this.memory.setDraft(this.origin, id, "");
        if (this.session.state.conversationId === id) this.newConversation({ focus: false });
        return "gone";
      }
      const text = this.report(err);
      if (gone) this.load();
      this.sidebar.say(text);
      return gone ? "gone" : "failed";
    }
  }

  /** The owner's title for a conversation (the model never replaces it). */
  async rename(id, title) {
    const text = (title || "").trim();
    if (!text) return;
    try {
      await this.api.renameConversation(id, text);
      this.sidebar.say("Conversation renamed.");
      await this.load();
    } catch (err) {
      this.sidebar.say(this.report(err));
    }
  }

  async remove(id, title) {
    const ok = await this.confirm({
      title: "Delete this conversation?",
      text: `“${title}” and all its messages are deleted from the server for good. Export first if you want to keep a copy.`,
      confirmLabel: "Delete",
    });
    if (!ok) return;
    try {
      await this.api.deleteConversation(id);
      this.memory.moveUnsent(this.origin, id, null);
      this.memory.setDraft(this.origin, id, "");
      if (id === this.session.state.conversationId) this.newConversation();
      this.sidebar.say("Conversation deleted.");
      await this.load();
    } catch (err) {
      this.sidebar.say(this.report(err));
    }
  }

  async clear() {
    const count = this.conversations.length;
    const more = this.session.state.nextBefore !== null ? "+" : "";
    const ok = await this.confirm({
      title: "Clear all history?",
      text: `Every conversation${count ? ` (${count}${more})` : ""} and every message is deleted from the server for good. This cannot be undone; export first if you want a copy. Settings and paired devices stay.`,
      confirmLabel: "Delete everything",
      id: "clear-dialog",
    });
    if (!ok) return;
    try {
      const res = await this.api.clearHistory();
      for (const m of this.memory.unsent(this.origin)) this.memory.moveUnsent(this.origin, m.conversationId, null);
      this.newConversation();
      this.sidebar.say(`History cleared${res && Number.isFinite(res.deleted) ? ` (${res.deleted} conversations deleted)` : ""}.`);
      await this.load();
    } catch (err) {
      this.sidebar.say(this.report(err));
    }
  }

  async exportAs(format) {
    this.sidebar.say("Preparing export…");
    try {
      const { blob, filename } = await this.api.exportHistory(format);
      this.download(blob, filename);
      this.sidebar.say(`Exported ${filename}.`);
    } catch (err) {
      this.sidebar.say(this.report(err));
    }
  }

  async importFile(file) {
    this.sidebar.say(`Importing ${file.name}…`);
    try {
      const text = await file.text();
      JSON.parse(text); // a clear message for a wrong file before sending it
      const res = await this.api.importHistory(text);
      this.sidebar.say(
        // "skipped" counts the messages this history already holds (an export of it imported again).
        `Imported ${res.imported_conversations} conversations, ${res.imported_messages} messages${res.skipped ? `, ${res.skipped} already here` : ""}.`,
      );
      await this.load();
    } catch (err) {
      this.sidebar.say(this.report(err, "import"));
    }
  }
}
