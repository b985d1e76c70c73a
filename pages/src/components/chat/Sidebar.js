// Conversations: start, switch, rename, delete; search; export JSON/Markdown; import; clear all
// (after a dialog). On phones (<= 700px) the sidebar is a drawer opened from the top bar.
// Search results replace the list while the box has words: each with its title and a snippet whose
// matching words are marked (<mark>, built as DOM nodes: a snippet is never parsed as HTML).

import { h, clear, formatTime } from "../../lib/dom.js";
import { setCodeText } from "../../lib/inline-code.js";

export class Sidebar {
  /**
   * @param {HTMLElement} root  #sidebar
   * @param {{onNew, onSelect, onDelete, onExport, onImport, onClear, onLoadMore, onSearch?, onRename?}} handlers
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
    this.searchBox = h("input", { id: "search-box", type: "search", class: "search-box", placeholder: "Search conversations",
      "aria-label": "Search conversations", autocomplete: "off", enterkeyhint: "search" });
    this.searchBox.addEventListener("input", () => handlers.onSearch && handlers.onSearch(this.searchBox.value));
    this.searchBox.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.searchBox.value) {
        e.preventDefault();
        e.stopPropagation();
        this.searchBox.value = "";
        if (handlers.onSearch) handlers.onSearch("");
      }
    });
    this.results = h("ul", { id: "search-results", class: "conversation-list search-results", "aria-label": "Search results", hidden: true });
    this.resultsNote = h("p", { class: "sidebar-note", id: "search-note", hidden: true });
    this.heading = h("h2", { class: "sidebar-heading", id: "conversations-heading" }, "Conversations");

    root.append(
      h("div", { class: "sidebar-top" },
        h("button", { id: "new-conversation", type: "button", class: "button primary wide", onclick: () => handlers.onNew() }, "+ New conversation"),
        h("div", { class: "search", role: "search" }, this.searchBox)),
      this.heading,
      this.resultsNote,
      this.results,
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

  /**
   * Why the list is not loaded (null: it is, or will be shown as it is). Said in place of "No
   * conversations yet.", which would read as a lost history.
   */
  setUnavailable(sentence) {
    this.unavailable = sentence || null;
    this.emptyNote.dataset.state = this.unavailable ? "unavailable" : "empty";
    setCodeText(this.emptyNote, this.unavailable || "No conversations yet.");
    if (this.unavailable) this.emptyNote.hidden = false;
    else if (this.list.hidden === false) this.emptyNote.hidden = this.list.childElementCount > 0;
  }

  /** Shows the conversations loaded so far; hasMore shows "Load older". */
  setConversations(conversations, { hasMore = false } = {}) {
    clear(this.list);
    for (const c of conversations) this.list.appendChild(this.renderItem(c));
    this.emptyNote.hidden = conversations.length > 0;
    this.loadMore.hidden = !hasMore;
    this.setActive(this.activeId);
  }

  /** Search results (null: back to the list), newest first, with their snippets' words marked. */
  setSearchResults(results, { query = "", indexing = false } = {}) {
    const searching = results !== null;
    this.results.hidden = !searching;
    this.list.hidden = searching;
    this.heading.textContent = searching ? "Search results" : "Conversations";
    clear(this.results);
    if (!searching) {
      this.resultsNote.hidden = true;
      this.emptyNote.hidden = this.list.childElementCount > 0;
      this.setActive(this.activeId);
      return;
    }
    this.emptyNote.hidden = true;
    this.loadMore.hidden = true;
    for (const r of results) this.results.appendChild(this.renderResult(r));
    const notes = [];
    if (!results.length) notes.push(`Nothing found for “${query}”.`);
    if (indexing) notes.push("Still reading the history: older conversations may be missing.");
    this.resultsNote.textContent = notes.join(" ");
    this.resultsNote.hidden = notes.length === 0;
  }

  renderResult(r) {
    const snippet = h("span", { class: "search-snippet" });
    // The server counts characters (code points); a JS string counts UTF-16 units (an emoji is two).
    const chars = Array.from(r.snippet || "");
    const part = (a, b) => chars.slice(a, b).join("");
    let at = 0;
    for (const [start, end] of r.highlights || []) {
      if (!(start >= at && end > start && end <= chars.length)) continue;
      snippet.append(part(at, start), h("mark", {}, part(start, end)));
      at = end;
    }
    snippet.append(part(at, chars.length));
    const open = h("button", { type: "button", class: "conversation-open", onclick: () => this.handlers.onSelect(r.conversation_id) },
      h("span", { class: "conversation-title" }, r.title || "Untitled conversation"),
      snippet,
      h("span", { class: "conversation-sub" }, formatTime(r.updated_at)));
    return h("li", { class: "conversation-item search-result", dataset: { id: r.conversation_id } }, open);
  }

  /** The title becomes a text box; Enter saves (handlers.onRename), Escape puts it back. */
  startRename(li, c) {
    const open = li.querySelector(".conversation-open");
    if (!open || li.querySelector(".rename-box")) return;
    const box = h("input", { type: "text", class: "rename-box", "aria-label": "New title", maxlength: "200" });
    box.value = c.title || "";
    let finished = false;
    const done = (save) => {
      if (finished) return; // replacing the box blurs it: once is enough
      finished = true;
      const value = box.value.trim();
      box.replaceWith(open);
      if (save && value && value !== c.title && this.handlers.onRename) {
        open.querySelector(".conversation-title").textContent = value;
        this.handlers.onRename(c.id, value);
      }
    };
    box.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        done(true);
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        done(false);
      }
    });
    box.addEventListener("blur", () => done(true));
    open.replaceWith(box);
    box.focus();
    box.select();
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
    const li = h("li", { class: "conversation-item", dataset: { id: c.id } }, open);
    if (this.handlers.onRename) {
      li.append(h("button", { type: "button", class: "conversation-rename", "aria-label": `Rename conversation “${title}”`, title: "Rename",
        onclick: () => this.startRename(li, c) }, "✎"));
    }
    li.append(del);
    return li;
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
