// The composer's microphone button and, while it records, a level meter, the elapsed
// time against the limit and a Cancel button; under them, one line for "Transcribing…" or what went
// wrong. It shows what it is told and reports the owner's clicks; app/voice.js does the rest.
// Hidden until the server says voice input is on (GET /api/health `speech.enabled`).

import { h, icon } from "../../lib/dom.js";
import { formatSeconds } from "../../lib/recorder.js";

const LABELS = {
  idle: "Record a message (voice input, transcribed on your computer)",
  recording: "Stop recording and transcribe",
  transcribing: "Transcribing…",
};

export class VoiceButton {
  /**
   * @param {HTMLFormElement} form  the composer's form: the button goes beside Send
   * @param {{onToggle: () => void, onCancel: () => void}} handlers
   */
  constructor(form, { onToggle, onCancel }) {
    this.state = "idle";
    this.maxSeconds = 120;
    this.button = h("button", {
      id: "voice-button",
      type: "button",
      class: "button voice-button",
      "aria-pressed": "false",
      "aria-label": LABELS.idle,
      title: LABELS.idle,
      hidden: true,
      onclick: () => onToggle(),
    }, icon("microphone"));
    this.level = h("meter", { id: "voice-level", class: "voice-level", min: "0", max: "1", value: "0", "aria-label": "Microphone level" });
    this.time = h("span", { id: "voice-time", class: "voice-time" }, "0:00");
    this.cancelButton = h("button", { id: "voice-cancel", type: "button", class: "button", onclick: () => onCancel() }, "Cancel");
    this.panel = h("div", { id: "voice-panel", class: "voice-panel", hidden: true }, this.level, this.time, this.cancelButton);
    this.note = h("p", { id: "voice-note", class: "voice-note", role: "status", "aria-live": "polite", hidden: true });
    const buttons = form.querySelector(".input-buttons") || form;
    buttons.insertBefore(this.button, buttons.firstChild);
    form.insertBefore(this.panel, buttons);
    form.insertBefore(this.note, buttons.nextSibling);
  }

  setAvailable(on) {
    this.button.hidden = !on;
    if (!on) this.panel.hidden = true;
  }

  /** idle | recording | transcribing */
  setState(state) {
    this.state = state;
    this.button.dataset.state = state;
    this.button.setAttribute("aria-pressed", state === "recording" ? "true" : "false");
    this.button.setAttribute("aria-label", LABELS[state]);
    this.button.title = LABELS[state];
    this.button.disabled = state === "transcribing";
    this.panel.hidden = state !== "recording";
    if (state === "recording") this.showProgress({ seconds: 0, level: 0 });
    if (state === "transcribing") this.say("Transcribing on your computer…");
  }

  showProgress({ seconds, level }) {
    this.level.value = level;
    this.time.textContent = `${formatSeconds(seconds)} / ${formatSeconds(this.maxSeconds)}`;
  }

  /** One line under the composer; "" hides it. */
  say(text) {
    this.note.textContent = text || "";
    this.note.hidden = !text;
  }
}
