// Server-Sent Events parser over a fetch() ReadableStream (EventSource cannot POST or sign).
//
// Follows the WHATWG "event stream interpretation" rules: lines end in CRLF, LF or CR;
// lines starting with ":" are comments (": ping"); "data" lines are joined with "\n";
// an event is dispatched only at a blank line, so a final event without its blank line
// is never emitted.

export class SSEParser {
  /** @param {(ev: {event: string, data: string, id: string|undefined}) => void} onEvent */
  constructor(onEvent, { onComment } = {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.decoder = new TextDecoder("utf-8");
    this.buffer = "";
    this.pendingCR = false;
    this.firstChunk = true;
    this.lastId = undefined;
    this.reset();
  }

  reset() {
    this.eventType = "";
    this.dataLines = [];
    this.hasData = false;
  }

  /** Feed bytes (Uint8Array) or already-decoded text. */
  push(chunk) {
    let text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.firstChunk && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.firstChunk = false;
    }
    this._consume(text);
  }

  /** Flush the decoder. An incomplete trailing event is dropped, as the spec says. */
  end() {
    const rest = this.decoder.decode();
    if (rest) this._consume(rest);
    this.buffer = "";
    this.reset();
  }

  _consume(text) {
    if (!text) return;
    const s = this.buffer + text;
    let start = 0;
    if (this.pendingCR && s.length && s[0] === "\n") {
      // The LF of a CRLF that was split across chunks.
      start = 1;
    }
    this.pendingCR = false;
    for (let i = start; i < s.length; i++) {
      const c = s[i];
      if (c === "\n" || c === "\r") {
        this._line(s.slice(start, i));
        if (c === "\r") {
          if (i + 1 < s.length) {
            if (s[i + 1] === "\n") i++;
          } else {
            this.pendingCR = true;
          }
        }
        start = i + 1;
      }
    }
    this.buffer = s.slice(start);
  }

  _line(line) {
    if (line === "") {
      this._dispatch();
      return;
    }
    if (line[0] === ":") {
      if (this.onComment) this.onComment(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    let field;
    let value;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      default:
        // "retry" and unknown fields are ignored: we never reconnect automatically.
        break;
    }
  }

  _dispatch() {
    if (!this.hasData) {
      this.eventType = "";
      return;
    }
    const ev = { event: this.eventType || "message", data: this.dataLines.join("\n"), id: this.lastId };
    this.reset();
    this.onEvent(ev);
  }
}

/**
 * Reads a fetch Response body as SSE and calls onEvent for each complete event.
 * Resolves when the stream ends normally; rejects when reading fails (network cut, abort).
 */
export async function readSSE(response, onEvent, { onComment, signal } = {}) {
  if (!response.body) throw new Error("the response has no body to stream");
  const reader = response.body.getReader();
  const parser = new SSEParser(onEvent, { onComment });
  const onAbort = () => reader.cancel().catch(() => {});
  if (signal) signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
    }
    parser.end();
  } finally {
    if (signal) signal.removeEventListener("abort", onAbort);
    try {
      reader.releaseLock();
    } catch {
      /* already released */
    }
  }
}

/** Parses a whole SSE text (tests, diagnostics). */
export function parseSSEText(text) {
  const out = [];
  const p = new SSEParser((e) => out.push(e));
  p.push(text);
  p.end();
  return out;
}
