// The conversation: user messages as plain text, replies as sanitised markdown with copy buttons
// on code blocks. New text is followed unless the owner scrolled up; a partial reply is marked
// "stopped" (cancelled) or "interrupted" (connection lost).
//
// Under each message, its actions: `‹ 2/3 ›` when it has siblings (another reply to the
// same message, or an edited version), Copy and Regenerate on a reply, Edit on the owner's message.
// What they do is the list's `actions` ({onSibling, onRegenerate, onEdit}, set by the wiring); a
// view only presents them.
//
// The reply being written is a record in the reply store (lib/reply-store.js), which decides what
// its stream's events mean; the list draws it (showReplies) and alone decides how each phase looks:
// the sentences under a reply that waits, loads or reconnects are here (replyLook).

import { h, clear, copyText, formatTime } from "../../lib/dom.js";
import { setCodeText } from "../../lib/inline-code.js";
import { seenNotes } from "../../lib/attachments.js";
import { contextNotes } from "../../lib/describe.js";
import { chipRow } from "./AttachmentChips.js";

const STATUS_LABEL = {
  streaming: "writing…",
  cancelled: "stopped",
  interrupted: "interrupted",
  error: "error",
  failed: "not sent",
  sending: "sending…",
};

const NEAR_BOTTOM_PX = 48;

const STOPPED_TEXT = "Stopped — the reply above is partial.";
const INTERRUPTED_TEXT = "Interrupted — the connection dropped or the server stopped, so the reply above may be partial. The conversation is reloaded from the server once it is back.";
const RECONNECTING_TEXT = "Connection lost — picking the reply up again…";

// The sentence under a message of a status, when the status itself says something.
const STATUS_NOTICE = { cancelled: STOPPED_TEXT, interrupted: INTERRUPTED_TEXT };

// A reply's phase (lib/reply-store.js) as a message status: every phase before its end is "being
// written" to the owner (the badge "writing…", aria-busy); what it waits for is said in its notice.
const PHASE_STATUS = {
  sending: "streaming", queued: "streaming", loading: "streaming", streaming: "streaming", reconnecting: "streaming",
  complete: "complete", cancelled: "cancelled", interrupted: "interrupted", error: "error",
};

function waitingText(position) {
  const place = Number.isInteger(position) && position > 0 ? ` Your place in the queue: ${position}.` : "";
  return `Waiting for the model, another reply is being written.${place}`;
}

function loadingText(label) {
  return `Loading ${label || "the model"} — the first reply after a switch waits for it.`;
}

/**
 * How a reply record looks: {status, notice, queued}. notice: the sentence under it ("" : the
 * status's own, if any); queued: the data-queued attribute (its place, "" when not said; null: none).
 */
export function replyLook(record, modelLabel = (name) => name) {
  const status = PHASE_STATUS[record.phase] || "streaming";
  if (record.phase === "queued") return { status, notice: waitingText(record.queuePosition), queued: String(record.queuePosition || "") };
  if (record.phase === "loading") return { status, notice: loadingText(record.loadingModel ? modelLabel(record.loadingModel) : ""), queued: null };
  if (record.phase === "reconnecting") return { status, notice: RECONNECTING_TEXT, queued: null };
  if (record.phase === "error") return { status, notice: record.error || "", queued: null };
  return { status, notice: "", queued: null };
}

// What the empty conversation says: an invitation, unless this device can no longer chat.
const EMPTY_TEXT = {
  ready: ["Start a conversation", "Your messages go to the model on your own machine. History is kept there, encrypted."],
  revoked: ["This device was revoked", "It can no longer chat with your server. Press Pair again above and pair it with a new code from `privchat pair`."],
};

export class MessageView {
  constructor(list, { id = null, role, content = "", status = "complete", createdAt = null, attachments = [] }) {
    this.list = list;
    this.role = role;
    this.text = content;
    this.renderScheduled = false;
    this.badge = h("span", { class: "message-badge" });
    this.body = h("div", { class: "message-body" });
    this.meta = h("div", { class: "message-meta" });
    this.notice = h("div", { class: "message-notice", hidden: true });
    this.actionsRow = h("div", { class: "message-actions", hidden: true });
    this.branch = { index: 1, count: 1 };
    this.editing = false;
    const who = role === "user" ? "You" : "Model";
    this.el = h(
      "article",
      { class: "message", dataset: { role }, "aria-label": role === "user" ? "Your message" : "Reply" },
      h("header", { class: "message-head" }, h("span", { class: "message-role" }, who), " ", this.badge,
        createdAt ? h("time", { class: "message-time", datetime: String(createdAt) }, formatTime(createdAt)) : null),
      chipRow(attachments), // the files sent with it
      this.body,
      this.notice,
      this.meta,
      this.actionsRow,
    );
    this.id = null;
    if (id) this.setId(id, { quiet: true });
    this.attachments = attachments;
    this.setStatus(status);
    this.renderNow();
  }

  /** The message's id (the server's), kept here and drawn as data-id; never read back from the DOM. */
  setId(id, { quiet = false } = {}) {
    this.id = id || null;
    if (this.id) this.el.dataset.id = this.id;
    else delete this.el.dataset.id;
    if (!quiet) this.renderActions();
  }

  /**
   * Draws the reply being written from its record (lib/reply-store.js): its id, text, phase and,
   * at its end, the server's figures. Only what changed since the last record is drawn again.
   */
  showReply(record) {
    if (record.assistantId && record.assistantId !== this.id) this.setId(record.assistantId);
    this.model = record.model; // named quietly under the reply (setMeta)
    if (record.text !== this.text) this.setText(record.text);
    const look = replyLook(record, this.list.modelLabel);
    const shown = this.shownLook;
    if (!shown || shown.status !== look.status || shown.notice !== look.notice || shown.queued !== look.queued) {
      this.shownLook = look;
      if (look.queued === null) delete this.el.dataset.queued;
      else this.el.dataset.queued = look.queued;
      this.setStatus(look.status, look.notice);
    }
    if (record.meta && record.meta !== this.shownMeta) {
      this.shownMeta = record.meta;
      this.setMeta(record.meta); // after the status: a note on what the model did not read stays
    }
  }

  /** Its place among its siblings: `‹ index/count ›` when count > 1. */
  setBranch({ index = 1, count = 1 } = {}) {
    this.branch = { index, count };
    this.renderActions();
  }

  renderActions() {
    const actions = this.list.actions || {};
    const row = clear(this.actionsRow);
    const button = (cls, label, onClick, extra = {}) =>
      h("button", { type: "button", class: `message-action ${cls}`, onclick: onClick, ...extra }, label);
    const { index, count } = this.branch;
    const settled = this.id && !["streaming", "sending", "failed"].includes(this.status);
    if (count > 1 && this.id) {
      row.append(h("span", { class: "branch-nav", role: "group", "aria-label": "Versions" },
        button("branch-prev", "‹", () => actions.onSibling && actions.onSibling(this, -1),
          { "aria-label": "Previous version", disabled: index <= 1 }),
        h("span", { class: "branch-count" }, `${index}/${count}`),
        button("branch-next", "›", () => actions.onSibling && actions.onSibling(this, 1),
          { "aria-label": "Next version", disabled: index >= count })));
    }
    if (this.role === "assistant" && this.text && this.status !== "streaming") {
      const copy = button("copy-reply", "Copy", async () => {
        const ok = await copyText(this.text);
        copy.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => (copy.textContent = "Copy"), 2000);
      }, { "aria-label": "Copy reply" });
      row.append(copy);
    }
    if (this.role === "assistant" && settled && actions.onRegenerate) {
      row.append(button("regenerate", "Regenerate", () => actions.onRegenerate(this), { "aria-label": "Regenerate reply" }));
    }
    if (this.role === "user" && settled && actions.onEdit && !this.editing) {
      row.append(button("edit", "Edit", () => this.startEdit(), { "aria-label": "Edit message" }));
    }
    row.hidden = row.childElementCount === 0;
  }

  /** The owner's message in a text box; Save sends the new text as a new branch (actions.onEdit). */
  startEdit() {
    const actions = this.list.actions || {};
    this.editing = true;
    const box = h("textarea", { class: "edit-box", "aria-label": "Edited message", rows: "3" });
    box.value = this.text;
    const save = h("button", { type: "button", class: "button small primary edit-save" }, "Send as new version");
    const cancel = h("button", { type: "button", class: "button small edit-cancel" }, "Cancel");
    cancel.addEventListener("click", () => {
      this.editing = false;
      this.renderNow();
      this.renderActions();
    });
    save.addEventListener("click", () => {
      const text = box.value.trim();
      if (!text || !actions.onEdit) return;
      this.editing = false;
      actions.onEdit(this, text);
    });
    box.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        save.click();
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        cancel.click();
      }
    });
    clear(this.body).append(box, h("div", { class: "tool-row" }, save, cancel));
    this.renderActions();
    box.focus();
  }

  append(text) {
    this.text += text;
    this.scheduleRender();
  }

  setText(text) {
    this.text = text;
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.renderScheduled) return;
    this.renderScheduled = true;
    requestAnimationFrame(() => {
      this.renderScheduled = false;
      this.renderNow();
    });
  }

  renderNow() {
    const wasFollowing = this.list.follow;
    if (this.role === "assistant") {
      clear(this.body);
      this.body.appendChild(this.list.md.renderFragment(this.text));
      this.decorateCode();
    } else {
      this.body.textContent = this.text;
    }
    this.list.contentChanged(wasFollowing);
  }

  decorateCode() {
    for (const pre of this.body.querySelectorAll("pre")) {
      const code = pre.querySelector("code") || pre;
      if (!code.textContent.trim()) continue; // nothing to copy: no button
      // Syntax colours (a registered language, or a confident guess for a longer block with none);
      // the text is unchanged, so Copy still copies the plain code.
      if (code !== pre && this.list.md.highlight) this.list.md.highlight(code);
      const button = h("button", { type: "button", class: "copy-button", "aria-label": "Copy code" }, "Copy");
      button.addEventListener("click", async () => {
        const ok = await copyText(code.textContent);
        button.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => (button.textContent = "Copy"), 2000);
      });
      // The button sits in a head row above the code (with its language), not over the code's first
      // line: space kept free for it inside the block read as a blank first line .
      const lang = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className || "");
      const wrap = h("div", { class: "code-block" },
        h("div", { class: "code-head" }, h("span", { class: "code-lang" }, lang ? lang[1] : ""), button));
      pre.replaceWith(wrap);
      wrap.append(pre);
    }
  }

  /** complete | streaming | cancelled | interrupted | error | failed | sending */
  setStatus(status, sentence = "") {
    this.status = status;
    this.el.dataset.status = status;
    const label = STATUS_LABEL[status] || "";
    this.badge.textContent = label;
    this.badge.hidden = !label;
    this.el.setAttribute("aria-busy", status === "streaming" ? "true" : "false");
    const notice = sentence || STATUS_NOTICE[status];
    if (notice) this.showNotice(notice);
    else this.hideNotice();
    this.renderActions();
  }

  showNotice(sentence, actions = []) {
    clear(this.notice);
    this.notice.append(setCodeText(h("span", {}), sentence)); // `privchat serve` drawn as code, as text nodes
    for (const a of actions) {
      this.notice.append(" ", h("button", { type: "button", class: `button small ${a.class || ""}`, onclick: a.onClick }, a.label));
    }
    this.notice.hidden = false;
    this.list.contentChanged(this.list.follow);
  }

  hideNotice() {
    clear(this.notice);
    this.notice.hidden = true;
  }

  /**
   * A send that did not reach the model: keep the text, say why, and offer what can be done now:
   * Send now (onSend; none while it cannot work) and Discard (onDiscard, when it is kept).
   */
  setFailed(sentence, onSend, onDiscard = null) {
    this.setStatus("failed");
    const actions = [];
    if (onSend) actions.push({ label: onDiscard ? "Send now" : "Retry", class: "primary retry-button", onClick: onSend });
    if (onDiscard) actions.push({ label: "Discard", class: "discard-button", onClick: onDiscard });
    this.showNotice(sentence, actions);
  }

  setMeta({ usage, timings, finish_reason: finish, model, attachments_seen: seen, message_cut: cut, dropped_messages: dropped } = {}) {
    const wasFollowing = this.list.follow;
    const parts = [];
    const name = model || this.model;
    if (name) parts.push(this.list.modelLabel(name)); // which model wrote it, quietly
    if (usage && Number.isFinite(usage.completion_tokens)) parts.push(`${usage.completion_tokens} tokens`);
    if (timings && Number.isFinite(timings.tokens_per_second)) parts.push(`${timings.tokens_per_second.toFixed(1)} tokens/s`);
    if (timings && Number.isFinite(timings.ttft_ms)) parts.push(`first token ${Math.round(timings.ttft_ms)} ms`);
    if (finish === "length") parts.push("stopped at the token limit");
    this.meta.textContent = parts.join(" · ");
    this.meta.hidden = parts.length === 0;
    // What the model did not read: the start of this message, earlier messages, part of a document.
    const notes = [...contextNotes({ message_cut: cut, dropped_messages: dropped }), ...seenNotes(seen, this.list.attachmentNames)];
    if (notes.length) this.showNotice(notes.join(" "));
    this.renderActions(); // Copy appears once the reply is whole
    // The line arrives after the last token: keep it in view, not under the composer.
    this.list.contentChanged(wasFollowing);
  }

  remove() {
    this.el.remove();
  }
}

/** The line under a reply loaded from history, from what the server stored with it. */
export function storedMeta(m) {
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  return {
    usage: { completion_tokens: num(m.completion_tokens) },
    timings: { tokens_per_second: num(m.tokens_per_second), ttft_ms: num(m.ttft_ms) },
    finish_reason: m.finish_reason || null,
    model: typeof m.model === "string" ? m.model : null,
    attachments_seen: Array.isArray(m.attachments_seen) ? m.attachments_seen : null,
  };
}

export class MessageList {
  /**
   * @param {HTMLElement} scroller the scrolling container (#messages)
   * @param {{render, renderFragment}} md from createMarkdown()
   * @param {HTMLButtonElement} jumpButton "Jump to latest", shown when new text arrives while scrolled up
   */
  constructor(scroller, md, jumpButton) {
    this.scroller = scroller;
    this.md = md;
    this.jump = jumpButton;
    this.follow = true;
    this.views = [];
    this.actions = {}; // {onSibling(view, delta), onRegenerate(view), onEdit(view, text)}: set by the wiring
    this.modelLabel = (name) => name; // a model's name as the owner knows it (its label): set by the wiring
    this.attachmentNames = {}; // attachment id -> name, for a stored reply's "saw the first 12 of 40 pages of …"
    this.reply = { serial: null, view: null }; // the reply record drawn (showReplies) and its view
    this.emptyTitle = h("h2", {}, EMPTY_TEXT.ready[0]);
    this.emptyText = h("p", {}, EMPTY_TEXT.ready[1]);
    this.empty = h("div", { class: "empty-state", dataset: { state: "ready" } }, this.emptyTitle, this.emptyText);
    scroller.appendChild(this.empty);
    scroller.addEventListener("scroll", () => {
      this.follow = this.nearBottom();
      if (this.follow) this.jump.hidden = true;
    }, { passive: true });
    this.jump.addEventListener("click", () => {
      this.follow = true;
      this.scrollToBottom();
      this.jump.hidden = true;
    });
  }

  /** The view of the message `id`, or null when it is not on screen. */
  viewOf(id) {
    return (id && this.views.find((v) => v.id === id)) || null;
  }

  /**
   * Draws the reply store's record (lib/reply-store.js) from now on. A new reply gets a view: the
   * one on screen with its id (a reply this page attaches to), else a new one at the end. A reply
   * whose view is gone (another conversation opened, the list cleared) is not drawn again; a reply
   * dropped from the store (it never reached the model) takes its view with it.
   */
  showReplies(store) {
    if (this.unfollowReplies) this.unfollowReplies();
    this.unfollowReplies = store.subscribe((record) => this.replyChanged(record));
  }

  replyChanged(record) {
    const { view } = this.reply;
    if (!record) {
      if (view && this.views.includes(view)) this.removeView(view);
      this.reply = { serial: null, view: null };
      return;
    }
    if (record.serial !== this.reply.serial) {
      const shown = this.viewOf(record.assistantId);
      this.reply = { serial: record.serial, view: shown || this.add({ id: record.assistantId, role: "assistant", content: "", status: "streaming" }) };
    }
    if (this.views.includes(this.reply.view)) this.reply.view.showReply(record);
  }

  /** The connection state (ConnectionStatus): a revoked device is not invited to start a conversation. */
  setConnectionState(state) {
    this.revoked = state === "revoked";
    this.renderEmpty();
  }

  /**
   * Why the conversations could not load ({title, text} from describe.js; null: nothing to say):
   * said instead of the invitation, so a server that is down does not look like a lost history.
   */
  setUnavailable(words) {
    this.unavailable = words || null;
    this.renderEmpty();
  }

  renderEmpty() {
    const key = this.revoked ? "revoked" : this.unavailable ? "unavailable" : "ready";
    const [title, text] = key === "unavailable" ? [this.unavailable.title, this.unavailable.text] : EMPTY_TEXT[key];
    if (this.empty.dataset.state === key && this.emptyShown === text) return;
    this.empty.dataset.state = key;
    this.emptyShown = text;
    this.emptyTitle.textContent = title;
    setCodeText(this.emptyText, text);
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  contentChanged(wasFollowing) {
    if (wasFollowing) {
      this.scrollToBottom();
      this.follow = true;
    } else if (!this.nearBottom()) {
      this.jump.hidden = false;
    }
  }

  clear() {
    for (const v of this.views) v.remove();
    this.views = [];
    this.empty.hidden = false;
    this.follow = true;
    this.jump.hidden = true;
  }

  /**
   * Adds a message at the end, or right after the view `after` ("start": before the first message),
   * behind the unsent messages already kept there.
   */
  add(message, { after = undefined } = {}) {
    this.empty.hidden = true;
    const wasFollowing = this.follow;
    const view = new MessageView(this, message);
    let at = after === "start" ? -1 : after ? this.views.indexOf(after) : null;
    if (at === -1 && after !== "start") at = null;
    if (at !== null) {
      while (at + 1 < this.views.length && this.views[at + 1].status === "failed") at++;
    }
    const next = at !== null && at + 1 < this.views.length ? this.views[at + 1] : null;
    if (next) {
      this.scroller.insertBefore(view.el, next.el);
      this.views.splice(at + 1, 0, view);
    } else {
      this.scroller.insertBefore(view.el, this.jump.parentNode === this.scroller ? this.jump : null);
      this.views.push(view);
    }
    this.contentChanged(wasFollowing || (message.role === "user" && !next));
    return view;
  }

  /** Where `view` is on screen: px from the top of the scroller (null: not shown). */
  offsetOf(view) {
    if (!view || !view.el.isConnected) return null;
    return view.el.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top;
  }

  /**
   * Replaces everything with a conversation from the server, scrolled to its end; with `anchor`
   * ({id, offset}) the message `id` stays where it was on screen instead (switching versions halfway
   * up a conversation must not move what the owner is reading).
   */
  show(messages, { anchor = null } = {}) {
    this.clear();
    for (const m of messages) for (const a of m.attachments || []) this.attachmentNames[a.id] = a.name;
    for (const m of messages) {
      const view = this.add({ id: m.id, role: m.role, content: m.content || "", status: m.status || "complete", createdAt: m.created_at,
        attachments: m.attachments || [] });
      if (m.role === "assistant" && m.status !== "streaming") view.setMeta(storedMeta(m));
    }
    const kept = anchor && this.views.find((v) => v.id === anchor.id);
    if (kept && Number.isFinite(anchor.offset)) {
      this.scroller.scrollTop += this.offsetOf(kept) - anchor.offset;
      this.follow = this.nearBottom();
      return;
    }
    this.follow = true;
    this.scrollToBottom();
  }

  /** Removes `view` and every view below it (a regenerate or an edit replaces what follows). */
  truncateFrom(view) {
    const at = this.views.indexOf(view);
    if (at < 0) return;
    for (const v of this.views.slice(at)) v.remove();
    this.views = this.views.slice(0, at);
    if (!this.views.length) this.empty.hidden = false;
  }

  removeView(view) {
    view.remove();
    this.views = this.views.filter((v) => v !== view);
    if (!this.views.length) this.empty.hidden = false;
  }
}
