// Voice input: the recorder (lib/recorder.js) with a fake MediaRecorder, microphone and
// Web Audio, and the microphone button in a real composer (VoiceButton + app/voice.js + InputArea):
// the words land in the message box, and nothing is ever sent.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { installDom, fresh, settle } from "./dom-env.js";
import { InputArea } from "../src/components/chat/InputArea.js";
import { VoiceController } from "../src/app/voice.js";
import { Recorder, BITS_PER_SECOND, blobToBase64, formatSeconds, levelOf, pickMimeType } from "../src/lib/recorder.js";
import { describe } from "../src/lib/describe.js";
import { ApiError } from "../src/lib/errors.js";

installDom();
const $ = (sel) => document.querySelector(sel);
const AUDIO = "fake opus bytes \u00ff\u0000 of a recording";

// ------------------------------------------------------------------ fakes of what the browser gives

function fakeBrowser({ types = ["audio/webm;codecs=opus"], deny = null, level = 0.1 } = {}) {
  const env = { recorders: [], tracks: [], asked: [], intervals: new Map(), clock: 0, closed: 0 };
  class FakeMediaRecorder {
    static isTypeSupported(type) {
      return types.includes(type);
    }
    constructor(stream, options) {
      this.stream = stream;
      this.options = options;
      this.mimeType = options.mimeType || "audio/webm";
      this.state = "inactive";
      this.listeners = {};
      env.recorders.push(this);
    }
    addEventListener(name, fn) {
      (this.listeners[name] ||= []).push(fn);
    }
    emit(name, event) {
      for (const fn of this.listeners[name] || []) fn(event);
    }
    start(timeslice) {
      this.state = "recording";
      this.timeslice = timeslice;
    }
    stop() {
      this.state = "inactive";
      queueMicrotask(() => {
        this.emit("dataavailable", { data: new Blob([AUDIO], { type: this.mimeType }) });
        this.emit("stop", {});
      });
    }
  }
  env.MediaRecorder = FakeMediaRecorder;
  env.mediaDevices = {
    async getUserMedia(constraints) {
      env.asked.push(constraints);
      if (deny) throw Object.assign(new Error("denied"), { name: deny });
      const track = { stopped: false, stop() { this.stopped = true; } };
      env.tracks.push(track);
      return { getTracks: () => [track] };
    },
  };
  env.AudioContext = class {
    createMediaStreamSource() {
      return { connect() {} };
    }
    createAnalyser() {
      return { fftSize: 0, getFloatTimeDomainData: (buffer) => buffer.fill(level) };
    }
    close() {
      env.closed += 1;
      return Promise.resolve();
    }
  };
  env.now = () => env.clock;
  let next = 1;
  env.timers = {
    setInterval(fn, ms) {
      env.intervals.set(next, { fn, ms });
      return next++;
    },
    clearInterval(id) {
      env.intervals.delete(id);
    },
  };
  /** Moves the clock on by `ms`, running the interval timers as they fall due. */
  env.advance = (ms) => {
    for (let t = 0; t < ms; t += 100) {
      env.clock += 100;
      for (const { fn } of [...env.intervals.values()]) fn();
    }
  };
  return env;
}

// ------------------------------------------------------------------ pure parts

test("the recording format: Opus in WebM where it can, AAC in MP4 in Safari, else the browser's choice", () => {
  assert.equal(pickMimeType((t) => ["audio/webm;codecs=opus", "audio/webm", "audio/mp4"].includes(t)), "audio/webm;codecs=opus");
  assert.equal(pickMimeType((t) => ["audio/ogg;codecs=opus"].includes(t)), "audio/ogg;codecs=opus"); // an older Firefox
  assert.equal(pickMimeType((t) => t.startsWith("audio/mp4")), "audio/mp4;codecs=mp4a.40.2"); // Safari
  assert.equal(pickMimeType(() => false), "");
  assert.equal(pickMimeType(undefined), "");
  assert.equal(pickMimeType(() => { throw new Error("no"); }), "");
});

test("the level: silence is 0, full scale is 1, -30 dB is halfway", () => {
  assert.equal(levelOf(new Float32Array(64)), 0);
  assert.equal(levelOf(new Float32Array(64).fill(1)), 1);
  assert.ok(Math.abs(levelOf(new Float32Array(64).fill(10 ** (-30 / 20))) - 0.5) < 0.01);
  assert.equal(levelOf([]), 0);
  assert.equal(formatSeconds(0), "0:00");
  assert.equal(formatSeconds(65.9), "1:05");
  assert.equal(formatSeconds(120), "2:00");
});

test("a Blob becomes the base64 of its bytes, long ones too", async () => {
  const bytes = new Uint8Array(100_000).map((_, i) => (i * 7) % 256);
  assert.equal(await blobToBase64(new Blob([bytes])), Buffer.from(bytes).toString("base64"));
});

// ------------------------------------------------------------------ the recorder

test("the recorder asks for the microphone, records Opus at a speech bitrate, ticks, and hands over the recording", async () => {
  const env = fakeBrowser({ level: 0.1 });
  const ticks = [];
  const recorder = new Recorder({ maxSeconds: 120, onTick: (t) => ticks.push(t), env });
  await recorder.start();
  assert.equal(env.asked.length, 1);
  assert.ok(env.asked[0].audio, "audio asked for");
  assert.equal(env.asked[0].video, undefined, "no camera");
  const [mr] = env.recorders;
  assert.deepEqual(mr.options, { mimeType: "audio/webm;codecs=opus", audioBitsPerSecond: BITS_PER_SECOND });
  assert.equal(mr.state, "recording");
  env.advance(2500);
  const last = ticks.at(-1);
  assert.equal(last.seconds, 2.5);
  assert.ok(Math.abs(last.level - levelOf([0.1])) < 1e-6 && last.level > 0.5, last);
  const { blob, mime, seconds } = await recorder.stop();
  assert.equal(mime, "audio/webm;codecs=opus");
  assert.equal(seconds, 2.5);
  assert.equal(await blob.text(), AUDIO);
  assert.ok(env.tracks.every((t) => t.stopped), "the microphone is released");
  assert.equal(env.intervals.size, 0, "no timer left");
  assert.equal(env.closed, 1, "the audio context is closed");
});

test("the recorder stops itself at the limit and says so", async () => {
  const env = fakeBrowser();
  let limited = 0;
  const ticks = [];
  const recorder = new Recorder({ maxSeconds: 5, onTick: (t) => ticks.push(t.seconds), onLimit: () => limited++, env });
  await recorder.start();
  env.advance(8000);
  assert.equal(limited, 1);
  assert.equal(env.recorders[0].state, "inactive");
  assert.equal(Math.max(...ticks), 5);
  const { seconds } = await recorder.stop();
  assert.equal(seconds, 5);
});

test("a refused microphone leaves nothing running", async () => {
  const env = fakeBrowser({ deny: "NotAllowedError" });
  const recorder = new Recorder({ env });
  await assert.rejects(recorder.start(), { name: "NotAllowedError" });
  assert.equal(env.recorders.length, 0);
  assert.equal(env.intervals.size, 0);
});

test("cancel throws the recording away and releases the microphone", async () => {
  const env = fakeBrowser();
  const recorder = new Recorder({ env });
  await recorder.start();
  recorder.cancel();
  assert.equal(env.recorders[0].state, "inactive");
  assert.ok(env.tracks.every((t) => t.stopped));
  assert.equal(env.intervals.size, 0);
});

// ------------------------------------------------------------------ the button in the composer

let env;
let sent;
let drafts;
let calls;
let answer;
let voice;

beforeEach(() => {
  fresh('<div id="composer"></div>');
  env = fakeBrowser();
  sent = [];
  drafts = [];
  calls = [];
  answer = async () => ({ text: "Send an email to my brother.", seconds: 2.5 });
  const input = new InputArea($("#composer"), { onSend: (t) => (sent.push(t), true), onStop: () => {}, onDraft: (t) => drafts.push(t) });
  const api = {
    transcribe: async (body) => {
      calls.push(body);
      return answer(body);
    },
  };
  voice = new VoiceController({
    form: input.form,
    textarea: input.textarea,
    api,
    report: (err, context) => describe(err, { context }).text,
    makeRecorder: (opts) => new Recorder({ ...opts, env }),
    supported: () => true,
  });
});

const HEALTH_ON = { speech: { enabled: true, max_seconds: 120 } };

test("the button shows only when the server says speech is on", () => {
  assert.equal($("#voice-button").hidden, true, "hidden before health");
  voice.refresh(HEALTH_ON);
  assert.equal($("#voice-button").hidden, false);
  voice.refresh({ speech: { enabled: false, max_seconds: 120 } });
  assert.equal($("#voice-button").hidden, true);
  voice.refresh({}); // a server from before voice input
  assert.equal($("#voice-button").hidden, true);
  assert.ok($("#input-form .input-buttons").contains($("#voice-button")), "beside Send");
});

test("a browser that cannot record shows no button, whatever the server says", () => {
  voice.supported = () => false;
  voice.refresh(HEALTH_ON);
  assert.equal($("#voice-button").hidden, true);
});

test("record, stop: the words land in the message box, after what is there, and nothing is sent", async () => {
  voice.refresh(HEALTH_ON);
  $("#message-input").value = "Please";
  $("#voice-button").click();
  await settle();
  assert.equal($("#voice-button").getAttribute("aria-pressed"), "true");
  assert.equal($("#voice-panel").hidden, false, "the meter and time show while recording");
  env.advance(3000);
  assert.equal($("#voice-time").textContent, "0:03 / 2:00");
  assert.ok(Number($("#voice-level").value) > 0);

  $("#voice-button").click();
  await settle(10);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].mime, "audio/webm;codecs=opus");
  assert.equal(Buffer.from(calls[0].audio, "base64").toString(), Buffer.from(AUDIO).toString());
  assert.equal($("#message-input").value, "Please Send an email to my brother.");
  assert.deepEqual(sent, [], "never sent on its own");
  assert.equal(drafts.at(-1), "Please Send an email to my brother.", "kept as the draft");
  assert.equal($("#voice-button").getAttribute("aria-pressed"), "false");
  assert.equal($("#voice-panel").hidden, true);
  assert.equal($("#voice-note").hidden, true);
  assert.ok(env.tracks.every((t) => t.stopped), "the microphone is released");
});

test("while it transcribes the button is disabled and says so", async () => {
  let release;
  answer = () => new Promise((resolve) => (release = resolve));
  voice.refresh(HEALTH_ON);
  $("#voice-button").click();
  await settle();
  $("#voice-button").click();
  await settle(10);
  assert.equal($("#voice-button").disabled, true);
  assert.match($("#voice-note").textContent, /Transcribing/);
  $("#voice-button").click(); // ignored
  release({ text: "hello", seconds: 1 });
  await settle(10);
  assert.equal(calls.length, 1);
  assert.equal($("#voice-button").disabled, false);
  assert.equal($("#message-input").value, "hello");
});

test("the length limit from health stops the recording and transcribes it", async () => {
  voice.refresh({ speech: { enabled: true, max_seconds: 10 } });
  $("#voice-button").click();
  await settle();
  env.advance(12_000);
  await settle(10);
  assert.equal(calls.length, 1);
  assert.equal($("#message-input").value, "Send an email to my brother.");
  assert.deepEqual(sent, []);
});

test("Cancel throws the recording away: nothing is transcribed", async () => {
  voice.refresh(HEALTH_ON);
  $("#voice-button").click();
  await settle();
  $("#voice-cancel").click();
  await settle(10);
  assert.equal(calls.length, 0);
  assert.equal($("#message-input").value, "");
  assert.equal($("#voice-panel").hidden, true);
});

test("each refusal of the server is a sentence under the composer; the box is untouched", async () => {
  const cases = {
    audio_silent: /No speech was heard/,
    audio_undecodable: /could not be read as audio/,
    audio_too_long: /longer than 2 minutes/,
    audio_too_large: /too large/,
    payload_too_large: /too large/,
    audio_type_not_allowed: /format your computer does not accept/,
    speech_disabled: /turned off/,
    speech_unavailable: /not installed/,
    speech_busy: /try again in a moment/,
  };
  voice.refresh(HEALTH_ON);
  for (const [code, sentence] of Object.entries(cases)) {
    answer = async () => {
      throw new ApiError(code === "speech_busy" || code.startsWith("speech") ? 503 : 422, code,
        code === "audio_too_long" ? "The recording is longer than 2 minutes; record at most 2 minutes at a time."
          : "Voice input is not available on this computer: the speech model is not installed.");
    };
    $("#message-input").value = "draft";
    $("#voice-button").click();
    await settle();
    $("#voice-button").click();
    await settle(10);
    assert.match($("#voice-note").textContent, sentence, code);
    assert.equal($("#voice-note").hidden, false);
    assert.equal($("#message-input").value, "draft", code);
  }
  assert.deepEqual(sent, []);
});

test("a refused microphone says what to do", async () => {
  env = fakeBrowser({ deny: "NotAllowedError" });
  voice.refresh(HEALTH_ON);
  $("#voice-button").click();
  await settle(10);
  assert.match($("#voice-note").textContent, /microphone is blocked/);
  assert.equal($("#voice-button").getAttribute("aria-pressed"), "false");
  assert.equal(calls.length, 0);
});

test("every code the server's speech module can answer has its sentence here", async () => {
  // The backend's error catalogue (errors.py) holds each code once; voice input's are speech_* and audio_*.
  const source = await readFile(new URL("../../backend/privchat/errors.py", import.meta.url), "utf8");
  const codes = [...source.matchAll(/Code\("((?:speech|audio)_[a-z_]+)"/g)].map((m) => m[1]);
  assert.ok(codes.length >= 8, codes);
  for (const code of codes) {
    const text = describe(new ApiError(422, code, "SERVER SENTENCE"), { context: "voice" }).text;
    assert.ok(text && !text.startsWith("Not transcribed"), `${code}: ${text}`);
  }
  // The control: a code it does not know falls back to the generic sentence.
  assert.match(describe(new ApiError(500, "internal", "boom"), { context: "voice" }).text, /^Not transcribed: boom/);
});
