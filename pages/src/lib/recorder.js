// A recording from the microphone, for voice input: MediaRecorder in the format the
// browser records best (Opus in WebM in Chromium, Opus in Ogg or WebM in Firefox, AAC in MP4 in
// Safari), a level (0..1) and the elapsed time every tick, and a stop at the length limit. The
// audio stays in memory (a Blob) until the page sends it, sealed, to the owner's machine; the
// browser's own speech recognition is never used.
//
// Everything the browser provides is passed in (tests give fakes): mediaDevices, MediaRecorder,
// AudioContext, the clock and the timers.

// In order of preference; the server accepts these containers (backend speech/audio.py).
export const PREFERRED_TYPES = [
  "audio/webm;codecs=opus",
  "audio/ogg;codecs=opus",
  "audio/mp4;codecs=mp4a.40.2",
  "audio/mp4",
  "audio/webm",
  "audio/ogg",
];
export const BITS_PER_SECOND = 32_000; // speech needs no more: 2 minutes are about 480 KB
export const TICK_MS = 100;

/** The first type the browser records, or "" (then MediaRecorder picks, and says which in .mimeType). */
export function pickMimeType(isTypeSupported) {
  if (typeof isTypeSupported !== "function") return "";
  return PREFERRED_TYPES.find((type) => {
    try {
      return isTypeSupported(type);
    } catch {
      return false;
    }
  }) || "";
}

/** The level meter's value for a block of samples (-1..1): its RMS in dB, -60 dB..0 dB as 0..1. */
export function levelOf(samples) {
  if (!samples || !samples.length) return 0;
  let sum = 0;
  for (const s of samples) sum += s * s;
  const rms = Math.sqrt(sum / samples.length);
  if (rms <= 0) return 0;
  return Math.min(1, Math.max(0, (20 * Math.log10(rms) + 60) / 60));
}

/** "m:ss" */
export function formatSeconds(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function browserEnv() {
  const g = globalThis;
  return {
    mediaDevices: g.navigator && g.navigator.mediaDevices,
    MediaRecorder: g.MediaRecorder,
    AudioContext: g.AudioContext || g.webkitAudioContext,
    now: () => Date.now(),
    timers: g,
  };
}

export class Recorder {
  /**
   * @param {{maxSeconds?: number, onTick?: (t: {seconds: number, level: number}) => void,
   *          onLimit?: () => void, env?: object}} opts
   *   onTick   every TICK_MS while recording: the elapsed seconds and the level
   *   onLimit  the recording reached maxSeconds and stopped itself (call stop() for the Blob)
   */
  constructor({ maxSeconds = 120, onTick = () => {}, onLimit = () => {}, env = {} } = {}) {
    this.env = { ...browserEnv(), ...env };
    this.maxSeconds = maxSeconds;
    this.onTick = onTick;
    this.onLimit = onLimit;
    this.state = "idle"; // idle | recording | stopped
    this.chunks = [];
    this.stream = null;
    this.recorder = null;
    this.audio = null;
    this.timer = null;
    this.startedAt = null;
    this.stoppedAt = null;
    this.done = null;
  }

  /** Whether this browser can record at all (a secure context with MediaRecorder and getUserMedia). */
  static supported(env = browserEnv()) {
    return Boolean(env.MediaRecorder && env.mediaDevices && typeof env.mediaDevices.getUserMedia === "function");
  }

  get seconds() {
    if (this.startedAt === null) return 0;
    return ((this.state === "recording" ? this.env.now() : this.stoppedAt) - this.startedAt) / 1000;
  }

  /** Asks for the microphone and starts; throws the browser's DOMException (NotAllowedError, …). */
  async start() {
    if (this.state !== "idle") throw new Error("this recorder was already started");
    const { mediaDevices, MediaRecorder } = this.env;
    this.stream = await mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    try {
      const mimeType = pickMimeType(MediaRecorder.isTypeSupported && MediaRecorder.isTypeSupported.bind(MediaRecorder));
      const options = { audioBitsPerSecond: BITS_PER_SECOND };
      if (mimeType) options.mimeType = mimeType;
      this.recorder = new MediaRecorder(this.stream, options);
      this.requestedType = mimeType;
      this.recorder.addEventListener("dataavailable", (e) => {
        if (e.data && e.data.size) this.chunks.push(e.data);
      });
      this.done = new Promise((resolve, reject) => {
        this.recorder.addEventListener("stop", () => resolve());
        this.recorder.addEventListener("error", (e) => reject((e && e.error) || new Error("the recording failed")));
      });
      this.done.catch(() => {}); // stop() reports it
      this.recorder.start(1000); // a chunk a second: a long recording is not one huge buffer at the end
      this.meter = this.openMeter();
    } catch (err) {
      this.release();
      throw err;
    }
    this.state = "recording";
    this.startedAt = this.env.now();
    this.timer = this.env.timers.setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  /** A level meter from an AnalyserNode; without Web Audio the level is 0 and recording still works. */
  openMeter() {
    const { AudioContext } = this.env;
    if (!AudioContext) return null;
    try {
      this.audio = new AudioContext();
      const source = this.audio.createMediaStreamSource(this.stream);
      const analyser = this.audio.createAnalyser();
      analyser.fftSize = 1024;
      source.connect(analyser);
      const buffer = new Float32Array(analyser.fftSize);
      return () => {
        analyser.getFloatTimeDomainData(buffer);
        return levelOf(buffer);
      };
    } catch {
      return null;
    }
  }

  tick() {
    if (this.state !== "recording") return;
    const seconds = this.seconds;
    this.onTick({ seconds: Math.min(seconds, this.maxSeconds), level: this.meter ? this.meter() : 0 });
    if (seconds >= this.maxSeconds) {
      this.halt();
      this.onLimit();
    }
  }

  halt() {
    if (this.state !== "recording") return;
    this.state = "stopped";
    this.stoppedAt = this.env.now();
    this.env.timers.clearInterval(this.timer);
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
  }

  /** Stops and gives the recording: {blob, mime, seconds}. The microphone is released. */
  async stop() {
    this.halt();
    try {
      await this.done;
    } finally {
      this.release();
    }
    const mime = (this.recorder && this.recorder.mimeType) || this.requestedType || (this.chunks[0] && this.chunks[0].type) || "";
    const blob = new Blob(this.chunks, { type: mime });
    this.chunks = [];
    return { blob, mime, seconds: Math.min(this.seconds, this.maxSeconds) };
  }

  /** Stops and throws the recording away. */
  cancel() {
    this.halt();
    this.chunks = [];
    this.release();
  }

  release() {
    this.env.timers.clearInterval(this.timer);
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.audio && typeof this.audio.close === "function") this.audio.close().catch(() => {});
    this.audio = null;
  }
}

/** A Blob as base64 (for the JSON body), in slices so a long recording does not blow the stack. */
export async function blobToBase64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
