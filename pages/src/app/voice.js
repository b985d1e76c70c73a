// Voice input: the microphone button records, the recording goes sealed to the owner's
// machine (POST /api/transcribe, api.js), and the words land in the message box, after what is
// already there, for the owner to check and send. Nothing is ever sent to the model from here.
// The browser's own speech recognition is never used: the audio is transcribed by the server.

import { Recorder, blobToBase64 } from "../lib/recorder.js";
import { VoiceButton } from "../components/chat/VoiceButton.js";

export class VoiceController {
  /**
   * @param {{form: HTMLFormElement, textarea: HTMLTextAreaElement, api: {transcribe: Function},
   *          report: (err: unknown, context: string) => string, makeRecorder?: Function,
   *          supported?: () => boolean}} opts
   *   report        the sentence for a failure (describe.js, context "voice")
   *   makeRecorder  (opts) => a Recorder (tests pass fakes)
   */
  constructor({ form, textarea, api, report, makeRecorder = (opts) => new Recorder(opts), supported = () => Recorder.supported() }) {
    this.textarea = textarea;
    this.api = api;
    this.report = report;
    this.makeRecorder = makeRecorder;
    this.supported = supported;
    this.recorder = null;
    this.state = "idle";
    this.maxSeconds = 120;
    this.button = new VoiceButton(form, { onToggle: () => this.toggle(), onCancel: () => this.cancel() });
  }

  /** From a health answer: the button shows only when the server says speech is on (and the browser can record). */
  refresh(health) {
    const speech = health && health.speech;
    const on = Boolean(speech && speech.enabled) && this.supported();
    if (speech && Number.isFinite(speech.max_seconds)) this.maxSeconds = this.button.maxSeconds = speech.max_seconds;
    if (!on && this.state === "recording") this.cancel();
    this.button.setAvailable(on);
  }

  toggle() {
    if (this.state === "idle") return this.start();
    if (this.state === "recording") return this.finish();
    return undefined; // transcribing: the button is disabled
  }

  async start() {
    this.button.say("");
    const recorder = this.makeRecorder({
      maxSeconds: this.maxSeconds,
      onTick: (t) => this.button.showProgress(t),
      onLimit: () => this.finish(),
    });
    this.recorder = recorder;
    this.setState("recording");
    try {
      await recorder.start();
    } catch (err) {
      this.recorder = null;
      this.setState("idle");
      this.button.say(this.report(err, "voice"));
    }
  }

  /** Stops, sends the recording, and puts the words in the message box. */
  async finish() {
    const recorder = this.recorder;
    if (!recorder || this.state !== "recording") return;
    this.recorder = null;
    this.setState("transcribing");
    try {
      const { blob, mime } = await recorder.stop();
      const { text } = await this.api.transcribe({ audio: await blobToBase64(blob), mime });
      this.insert(text);
      this.button.say("");
    } catch (err) {
      this.button.say(this.report(err, "voice"));
    } finally {
      this.setState("idle");
    }
  }

  cancel() {
    if (!this.recorder) return;
    this.recorder.cancel();
    this.recorder = null;
    this.setState("idle");
    this.button.say("");
  }

  /** The words after what the box holds; an input event so the box resizes and the draft is kept. */
  insert(text) {
    const words = String(text || "").trim();
    if (!words) return;
    const current = this.textarea.value;
    this.textarea.value = current.trim() ? `${current.replace(/\s+$/, "")} ${words}` : words;
    this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
    this.textarea.focus();
  }

  setState(state) {
    this.state = state;
    this.button.setState(state);
  }
}
