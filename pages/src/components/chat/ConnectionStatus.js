// Says, in words, how the connection stands. The text sits in a role="status" live region so
// screen readers announce changes; data-state carries the machine-readable state, and colour is
// only a second cue (each state also has its own icon-free wording).

import { h, clear } from "../../lib/dom.js";
import { setCodeText } from "../../lib/inline-code.js";

export const STATES = [
  "connecting",
  "ready",
  "loading",
  "model_error",
  "unreachable",
  "csp",
  "tunnel",
  "access",
  "unpaired",
  "revoked",
  "untrusted",
  "outdated",
  "unsealed",
  "offline",
  "reconnecting",
];

export class ConnectionStatus {
  /**
   * @param {HTMLElement} el       the #status element (role="status", aria-live="polite")
   * @param {HTMLElement} actions  container for the buttons that go with a state
   * @param {{onAction?: (run: string) => void, onState?: (state: string) => void}} opts
   *   onAction  a button was pressed: "retry", "signin", "repair", "repair_key", "reload"; onState  the state changed (state, sentence)
   */
  constructor(el, actions, { onAction = () => {}, onState = () => {} } = {}) {
    this.el = el;
    this.actionsEl = actions;
    this.onAction = onAction;
    this.onState = onState;
    this.state = null;
    this.text = "";
    this.note = "";
    this.actionsKey = null;
    const doc = el.ownerDocument;
    this.textEl = el.querySelector(".status-text") || el.appendChild(h("span", { class: "status-text" }));
    // The note (countdowns) sits outside the live region so it is not announced every second.
    this.noteEl = doc.getElementById("status-note");
    if (!this.noteEl) {
      this.noteEl = h("span", { id: "status-note", class: "status-note" });
      el.after(this.noteEl);
    }
    this.show({ state: "connecting", text: "Connecting…" });
  }

  /**
   * @param {{state: string, text: string, note?: string, actions?: {id: string, label: string, run: string}[]}} status
   *   state one of STATES; text the sentence shown and announced; note a secondary line
   */
  show({ state, text, note = "", actions = [] }) {
    if (!STATES.includes(state)) throw new Error(`unknown status ${state}`);
    const changed = state !== this.state || text !== this.text;
    const stateChanged = state !== this.state;
    this.state = state;
    this.text = text;
    this.el.dataset.state = state;
    if (changed) setCodeText(this.textEl, text); // `privchat serve` is drawn as code, as text nodes
    this.setNote(note);
    const key = actions.map((a) => a.id + a.label).join("|");
    if (key !== this.actionsKey) {
      this.actionsKey = key;
      clear(this.actionsEl);
      for (const a of actions) {
        this.actionsEl.appendChild(
          h("button", { type: "button", id: a.id, class: "button small", onclick: () => this.onAction(a.run) }, a.label),
        );
      }
      this.actionsEl.hidden = actions.length === 0;
    }
    if (stateChanged) this.onState(state, text);
  }

  /** A secondary line such as "Retrying in 8s…" (not re-announcing the main sentence). */
  setNote(note) {
    if (note === this.note) return;
    this.note = note;
    this.noteEl.textContent = note || "";
  }
}
