// Says, in words, how the connection stands. The text sits in a role="status" live region so
// screen readers announce changes; data-state carries the machine-readable state, and colour is
// only a second cue (each state also has its own icon-free wording).

import { h, clear } from "../../lib/dom.js";

export const STATES = [
  "connecting",
  "ready",
  "loading",
  "model_error",
  "unreachable",
  "tunnel",
  "access",
  "unpaired",
  "revoked",
  "offline",
  "reconnecting",
];

export class ConnectionStatus {
  /**
   * @param {HTMLElement} el       the #status element (role="status", aria-live="polite")
   * @param {HTMLElement} actions  container for the buttons that go with a state
   */
  constructor(el, actions) {
    this.el = el;
    this.actionsEl = actions;
    this.state = null;
    this.text = "";
    this.note = "";
    this.textEl = el.querySelector(".status-text") || el.appendChild(h("span", { class: "status-text" }));
    // The note (countdowns) sits outside the live region so it is not announced every second.
    this.noteEl = document.getElementById("status-note") || el.after(h("span", { id: "status-note", class: "status-note" })) || document.getElementById("status-note");
    this.set("connecting", "Connecting…");
  }

  /**
   * @param {string} state one of STATES
   * @param {string} text  the sentence shown and announced
   * @param {{actions?: {id: string, label: string, onClick: Function}[], note?: string}} opts
   */
  set(state, text, { actions = [], note = "" } = {}) {
    if (!STATES.includes(state)) throw new Error(`unknown status ${state}`);
    const changed = state !== this.state || text !== this.text;
    this.state = state;
    this.text = text;
    this.el.dataset.state = state;
    if (changed) this.textEl.textContent = text;
    this.setNote(note);
    const key = actions.map((a) => a.id + a.label).join("|");
    if (key !== this.actionsKey) {
      this.actionsKey = key;
      clear(this.actionsEl);
      for (const a of actions) {
        this.actionsEl.appendChild(
          h("button", { type: "button", id: a.id, class: "button small", onclick: a.onClick }, a.label),
        );
      }
      this.actionsEl.hidden = actions.length === 0;
    }
  }

  /** A secondary line such as "Retrying in 8 s…" (not re-announcing the main sentence). */
  setNote(note) {
    if (note === this.note) return;
    this.note = note;
    this.noteEl.textContent = note || "";
  }
}
