// The conversations kept on the server: the list (paged, 50 at a time), opening one, starting a new
// one, delete, clear all, export and import. The open conversation and the paging cursor live in
// the session store; the sidebar shows the list and the outcome of each action.

import { ApiError } from "../lib/errors.js";
import { downloadBlob } from "../lib/dom.js";

const PAGE_SIZE = 50;

export class HistoryController {
  /**
   * @param {{api, session, sidebar, messages, report: (err, context?: string) => string,
   *          stopStream: () => Promise<void>, closeDrawer: () => void, focusInput: () => void,
   *          confirm: (opts: {title, text, confirmLabel, id?}) => Promise<boolean>,
   *          download?: (blob: Blob, filename: string) => void}} deps
   *   confirm  asks before deleting (the page's confirmDialog)
   */
  constructor({ api, session, sidebar, messages, report, stopStream, closeDrawer, focusInput, confirm, download = downloadBlob }) {
    Object.assign(this, { api, session, sidebar, messages, report, stopStream, closeDrawer, focusInput, confirm, download });
    this.conversations = [];
    this.loaded = false;
    this.pendingReload = null;
    // Another device (or none): its history is loaded afresh.
    session.subscribe(["device"], (st) => {
      this.loaded = false;
      if (!st.device) this.show([], null);
    });
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

  newConversation() {
    if (this.session.state.stream) this.stopStream();
    this.session.set({ conversationId: null });
    this.messages.clear();
    this.closeDrawer();
    this.focusInput();
  }

  async open(id, { quiet = false } = {}) {
    if (this.session.state.stream) {
      if (quiet) return;
      await this.stopStream();
    }
    try {
      const conv = await this.api.getConversation(id);
      this.session.set({ conversationId: conv.id || id });
      this.messages.show(conv.messages || []);
      if (!quiet) {
        this.closeDrawer();
        this.focusInput();
      }
    } catch (err) {
      const text = this.report(err);
      if (err instanceof ApiError && err.code === "not_found") this.load();
      this.sidebar.say(text);
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
