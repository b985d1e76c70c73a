// Conversations: start, switch, delete; export JSON/Markdown; import; clear all (after a dialog).
// On phones (<= 700px) the sidebar is a drawer opened from the top bar.

import { h, clear, formatTime } from "../../lib/dom.js";

export class Sidebar {
  /**
   * @param {HTMLElement} root  #sidebar
   * @param {{onNew, onSelect, onDelete, onExport, onImport, onClear, onLoadMore}} handlers
   * @param {import("../../lib/session.js").Session} [session]  marks the open conversation
   */
  constructor(root, handlers, session = null) {
    this.root = root;
    this.handlers = handlers;
    this.activeId = session ? session.state.conversationId : null;

    this.list = h("ul", { id: "conversation-list", class: "conversation-list", "aria-label": "Conversations" });
    this.emptyNote = h("p", { class: "sidebar-note", id: "conversation-empty" }, "No conversations yet.");
    this.loadMore = h("button", { id: "load-more", type: "button", class: "button small", hidden: true, onclick: () => handlers.onLoadMore() }, "Load older");
    // Out of the tab order: its label is the one tab stop (an invisible second one confused keyboard users).
    this.importInput = h("input", { id: "import-file", type: "file", accept: "application/json,.json", class: "visually-hidden", tabindex: "-1" });
    this.importInput.addEventListener("change", () => {
      const f = this.importInput.files && this.importInput.files[0];
      if (f) handlers.onImport(f);
      this.importInput.value = "";
    });
    this.message = h("p", { id: "sidebar-message", class: "sidebar-note", role: "status", "aria-live": "polite" });

    root.append(
      h("div", { class: "sidebar-top" },
        h("button", { id: "new-conversation", type: "button", class: "button primary wide", onclick: () => handlers.onNew() }, "+ New conversation")),
      h("h2", { class: "sidebar-heading", id: "conversations-heading" }, "Conversations"),
      this.list,
      this.emptyNote,
      this.loadMore,
      h("div", { class: "sidebar-tools" },
        h("h2", { class: "sidebar-heading" }, "History"),
        h("div", { class: "tool-row" },
          h("button", { id: "export-json", type: "button", class: "button small", onclick: () => handlers.onExport("json") }, "Export JSON"),
          h("button", { id: "export-markdown", type: "button", class: "button small", onclick: () => handlers.onExport("markdown") }, "Export Markdown")),
        h("div", { class: "tool-row" },
          h("label", { for: "import-file", class: "button small", id: "import-label" }, "Import JSON…"),
          this.importInput,
          h("button", { id: "clear-history", type: "button", class: "button small danger", onclick: () => handlers.onClear() }, "Clear all history")),
        this.message),
    );
    // Keyboard users reach the hidden file input through its label.
    root.querySelector("#import-label").tabIndex = 0;
    root.querySelector("#import-label").addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        this.importInput.click();
      }
    });
    if (session) session.subscribe(["conversationId"], (st) => this.setActive(st.conversationId));
  }

  say(text) {
    this.message.textContent = text;
  }

  /** Shows the conversations loaded so far; hasMore shows "Load older". */
  setConversations(conversations, { hasMore = false } = {}) {
    clear(this.list);
    for (const c of conversations) this.list.appendChild(this.renderItem(c));
    this.emptyNote.hidden = conversations.length > 0;
    this.loadMore.hidden = !hasMore;
    this.setActive(this.activeId);
  }

  renderItem(c) {
    const title = c.title || "Untitled conversation";
    const open = h(
      "button",
      { type: "button", class: "conversation-open", onclick: () => this.handlers.onSelect(c.id) },
      h("span", { class: "conversation-title" }, title),
      h("span", { class: "conversation-sub" }, `${formatTime(c.updated_at || c.created_at)}${Number.isFinite(c.message_count) ? ` · ${c.message_count} messages` : ""}`),
    );
    const del = h(
      "button",
      { type: "button", class: "conversation-delete", "aria-label": `Delete conversation “${title}”`, title: "Delete", onclick: () => this.handlers.onDelete(c.id, title) },
      "×",
    );
    return h("li", { class: "conversation-item", dataset: { id: c.id } }, open, del);
  }

  setActive(id) {
    this.activeId = id;
    for (const li of this.list.children) {
      const on = li.dataset.id === id;
      li.classList.toggle("active", on);
      const btn = li.querySelector(".conversation-open");
      if (on) btn.setAttribute("aria-current", "true");
      else btn.removeAttribute("aria-current");
    }
  }
}
