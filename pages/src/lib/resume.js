// Picking a reply up again after a drop: which events are new, and how long to wait between tries.
//
// Every event of a reply has the SSE id "<assistant_message_id>:<n>". The server replays exactly
// the events after the id the page names, but a stream read twice over a seam (a stale connection
// that still delivers while the new one starts) must not show a token twice: the cursor accepts
// each number once, in order.

export const RETRY_BASE_MS = 1000;
export const RETRY_MAX_MS = 15000;

/** The sequence number of an event id, or null when it has none (a snapshot). */
export function seqOf(id) {
  if (typeof id !== "string") return null;
  const i = id.lastIndexOf(":");
  if (i < 0) return null;
  const n = Number(id.slice(i + 1));
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/** Delay before reattach try number `attempt` (0: at once; then 1 s, 2 s, 4 s … at most 15 s). */
export function retryDelay(attempt) {
  if (attempt <= 0) return 0;
  return Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
}

export class EventCursor {
  constructor() {
    this.seq = -1;
    this.id = null; // the last id taken: what a reattach names
  }

  /** True when the event is new (and then remembers it); events without a number always are. */
  take(id) {
    const n = seqOf(id);
    if (n === null) return true;
    if (n <= this.seq) return false;
    this.seq = n;
    this.id = id;
    return true;
  }

  /** Forget everything: the next stream starts from the first event (a snapshot replaces the text). */
  reset() {
    this.seq = -1;
    this.id = null;
  }
}
