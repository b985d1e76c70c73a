// The conversations kept on the server: the list (paged, 50 at a time), opening one, starting a new
// one, delete, clear all, export and import. The open conversation and the paging cursor live in
// the session store; the sidebar shows the list and the outcome of each action.
//
// Reopen where you were: the open conversation, the message box's draft per conversation and the
// messages that could not be sent outlive the tab (PageMemory, per API origin). A reload goes back
// to the conversation that was open (a new one when it is gone), with its draft, its unsent messages
// (with Retry) and, when its last reply is still being written, onRunningReply(messageId).

import { ApiError } from "../lib/errors.js";
import { downloadBlob } from "../lib/dom.js";
import { PageMemory } from "../lib/session.js";

const UNSENT_SENTENCE = "Not sent: the server did not get this message. Retry sends it.";

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
    this.pendingReload = null;
    this.reopenId = null;
    this.currentId = session.state.conversationId;
    // Another device (or none): its history is loaded afresh.
    session.subscribe(["device"], (st) => {
      this.loaded = false;
      if (!st.device) this.show([], null);
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

  /** Shows the kept unsent messages of a conversation below it, each with Retry. */
  showUnsent(conversationId) {
    for (const m of this.memory.unsent(this.origin, conversationId)) {
      const view = this.messages.add({ role: "user", content: m.text, status: "failed" });
      view.setFailed(UNSENT_SENTENCE, () => {
        if (this.session.state.stream) return;
        this.retrySend(m.text, view, m.id);
      });
    }
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
      const list = more ? [...this.conversations] : [];
      for (const c of res.conversations || []) {
        if (!list.some((i) => i.id === c.id)) list.push(c);
      }
      this.show(list, res.next_before ?? null);
    } catch (err) {
      this.sidebar.say(this.report(err));
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
        `Imported ${res.imported_conversations} conversations, ${res.imported_messages} messages${res.skipped ? `, skipped ${res.skipped}` : ""}.`,
      );
      await this.load();
    } catch (err) {
      this.sidebar.say(this.report(err, "import"));
    }
  }
}
