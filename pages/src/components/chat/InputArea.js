// The message box: Enter sends, Shift+Enter makes a new line, Esc or the Stop button cancels a
// running reply. The text stays in the box until the server has accepted it.

import { h } from "../../lib/dom.js";
import { setCodeText } from "../../lib/inline-code.js";

export class InputArea {
  /**
   * @param {HTMLElement} root
   * @param {{onSend: (text: string) => Promise<boolean>|boolean, onStop: () => void,
   *          onDraft?: (text: string) => void}} handlers
   *   onSend returns true when the message was taken (then the box is cleared).
   *   onDraft hears the box's text as the owner types, and "" once a message was taken (drafts).
   * @param {import("../../lib/session.js").Session} [session]  Stop replaces Send while a reply streams
   */
  constructor(root, { onSend, onStop, onDraft = () => {} }, session = null) {
    this.onSend = onSend;
    this.onStop = onStop;
    this.onDraft = onDraft;
    this.streaming = false;
    this.enabled = true;

    this.textarea = h("textarea", {
      id: "message-input",
      name: "message",
      rows: "1",
      placeholder: "Message your model…",
      autocomplete: "off",
      "aria-describedby": "input-hint",
      enterkeyhint: "send",
    });
    this.sendButton = h("button", { id: "send-button", type: "submit", class: "button primary" }, "Send");
    this.stopButton = h(
      "button",
      { id: "stop-button", type: "button", class: "button danger", hidden: true, onclick: () => this.onStop() },
      "Stop",
    );
    this.hint = h("p", { id: "input-hint", class: "input-hint" }, "Enter sends · Shift+Enter new line · Esc stops a reply");
    // What happens to a message sent now, while the server cannot be reached (shown on phones too).
    this.note = h("p", { id: "input-note", class: "input-note", role: "status", hidden: true });
    // A message longer than the model reads, said before it is sent (app/fit.js).
    this.fitNote = h("p", { id: "input-fit", class: "input-note", role: "status", hidden: true });
    this.form = h(
      "form",
      { id: "input-form", class: "input-area", "aria-label": "Write a message", novalidate: true },
      h("label", { for: "message-input", class: "visually-hidden" }, "Message"),
      this.textarea,
      h("div", { class: "input-buttons" }, this.sendButton, this.stopButton),
      this.hint,
      this.note,
      this.fitNote,
    );
    root.appendChild(this.form);

    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.textarea.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.submit();
      } else if (e.key === "Escape" && this.streaming) {
        e.preventDefault();
        this.onStop();
      }
    });
    this.textarea.addEventListener("input", () => {
      this.autosize();
      this.onDraft(this.textarea.value);
    });
    if (session) session.subscribe(["stream"], (st) => this.setStreaming(Boolean(st.stream)));
  }

  autosize() {
    const ta = this.textarea;
    ta.style.height = "auto"; // CSSOM, allowed under style-src 'self'
    ta.style.height = Math.min(ta.scrollHeight + 2, 240) + "px";
  }

  async submit() {
    if (this.streaming || !this.enabled) return;
    const text = this.textarea.value;
    if (!text.trim()) {
      this.textarea.focus();
      return;
    }
    const taken = await this.onSend(text);
    if (taken) {
      this.textarea.value = "";
      this.autosize();
      this.onDraft("");
    }
  }

  setStreaming(on) {
    this.streaming = on;
    this.stopButton.hidden = !on;
    this.sendButton.hidden = on;
    this.form.dataset.streaming = on ? "true" : "false";
    if (!on) this.sendButton.disabled = !this.enabled;
  }

  setEnabled(on) {
    this.enabled = on;
    this.sendButton.disabled = !on;
  }

  /** Whether the message in the box fits the model (null: nothing to say). */
  setFitNote(sentence) {
    this.fitNote.textContent = sentence || "";
    this.fitNote.hidden = !sentence;
  }

  /** A sentence under the box (null: none). */
  setNote(sentence) {
    setCodeText(this.note, sentence || "");
    this.note.hidden = !sentence;
  }

  setText(text) {
    this.textarea.value = text;
    this.autosize();
  }

  focus() {
    this.textarea.focus();
  }
}
