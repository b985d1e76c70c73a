// Picking a reply up again after a drop: which events are new, whether a stream follows on from
// where it was asked to start, and how long to wait between tries.
//
// Every event of a reply has the id "<assistant_message_id>:<n>" (inside the seal). The server
// replays exactly the events after the id the page names, but a stream read twice over a seam (a
// stale connection that still delivers while the new one starts) must not show a token twice: the
// cursor accepts each number once, in order. And one stream must not skip: EventSequence refuses
// a stream whose numbers do not follow on from its cursor, so a reply cannot be cut or shifted.

import { E2EError } from "./errors.js";

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

const TERMINAL = new Set(["done", "error"]);

/**
 * The numbering of one stream, checked event by event (docs/E2E.md, "A reply stream"). A stream
 * asked for from the start begins with number 0, one asked for after `<reply>:<n>` with n + 1, and
 * every numbered event is the one before + 1, of the same reply: a gap, a repeat or another reply's
 * event is e2e_event_invalid (with `sequence: true`: asking again from the same place gets the same
 * answer), never a silent jump. Events without a number: a `snapshot` (the reply's stored text,
 * whole, for a finished reply whose token boundaries are gone) only as the first event, with
 * nothing numbered after it; a `done` or `error` anywhere (the server's own ending: a snapshot's,
 * a revoked device's); nothing else.
 */
export class EventSequence {
  /** @param {{after?: string|null, reply?: string|null}} opts  after: the cursor asked for (null: from the start) */
  constructor({ after = null, reply = null } = {}) {
    const n = after === null || after === undefined || after === "" ? -1 : seqOf(after);
    if (n === null) throw new RangeError(`${after} is not an event id`);
    this.next = n + 1;
    this.reply = reply || (n >= 0 ? after.slice(0, after.lastIndexOf(":")) : null);
    this.count = 0;
    this.whole = false; // a snapshot came: the text is whole, nothing numbered may follow
  }

  fail(message) {
    return Object.assign(new E2EError("e2e_event_invalid", message), { sequence: true });
  }

  /** Throws unless `ev` ({id, event}) may come next; remembers it. */
  check({ id, event }) {
    const first = this.count === 0;
    this.count += 1;
    if (id === null || id === undefined) {
      if (event === "snapshot" && first) this.whole = true;
      else if (!TERMINAL.has(event)) throw this.fail(`a "${event}" event without a number`);
      return;
    }
    const n = seqOf(id);
    const reply = n === null ? null : id.slice(0, id.lastIndexOf(":"));
    if (n === null || !reply) throw this.fail(`the event id ${id} is not <reply>:<n>`);
    if (this.whole) throw this.fail(`event ${id} after the reply's whole text`);
    if (this.reply !== null && reply !== this.reply) throw this.fail(`event ${id} is of another reply than ${this.reply}`);
    if (n !== this.next) throw this.fail(`event ${id} where number ${this.next} was due`);
    this.reply = reply;
    this.next = n + 1;
  }
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
