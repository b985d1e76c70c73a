// The reply store: the reply being written, as one record, and what each of its stream's events
// means for it. The chat (app/chat.js) hands every event here and asks nothing of the screen; the
// message list (components/chat/MessageList.js) draws the record and alone decides how each phase
// looks. So what "queued" means is decided here once, and how it looks in one component.
//
// The record (frozen; every change is a new one):
//   serial          which reply this is: a new one for every send, regenerate and reattach, so an
//                   event of a reply that is no longer current changes nothing
//   assistantId     the reply's message id (null until the server's start event names it)
//   conversationId  the conversation it belongs to (null until known)
//   phase           "sending"      sent, the server has not taken it yet
//                   "queued"       taken, waiting while another reply is written (queuePosition)
//                   "loading"      taken, waiting for its model to load (loadingModel)
//                   "streaming"    being written (or taken and about to be)
//                   "reconnecting" the connection dropped; the page is picking the reply up again
//                   "complete"     written to its end
//                   "cancelled"    stopped by the owner; the text is partial
//                   "interrupted"  cut short (the server stopped, or the page could not follow it to
//                                  its end); the text may be partial
//                   "error"        the model or the stream failed (error says why)
//   queuePosition   its place in the queue while queued or reconnecting from it (0: not said), else null
//   loadingModel    the model it waits for while loading or reconnecting from it ("": not named), else null
//   model           the model writing it (the start event's), null when not said
//   text            the reply's text so far
//   meta            the server's figures from its done event (tokens, timings, finish reason), or null
//   error           the sentence for phase "error" (worded by describe.js through the chat's report)
//   started         the server took it (its start event came, or the page attached to it)
//   writing         its first token came: a queued or loading event after it is stale and ignored
//   stopped         the owner pressed Stop: the server's ending then reads as cancelled

export const PHASES = ["sending", "queued", "loading", "streaming", "reconnecting", "complete", "cancelled", "interrupted", "error"];

const OVER = new Set(["complete", "cancelled", "interrupted", "error"]);

/** True once the reply has ended: nothing that comes after changes it. */
export function isOver(record) {
  return Boolean(record) && OVER.has(record.phase);
}

/** A reply just begun: `attached` is one the server took before this page followed it (a reattach). */
export function newReply({ serial = 0, assistantId = null, conversationId = null, attached = false } = {}) {
  return Object.freeze({
    serial, assistantId, conversationId,
    phase: attached ? "streaming" : "sending",
    queuePosition: null, loadingModel: null, model: null,
    text: "", meta: null, error: null,
    started: attached, writing: false, stopped: false,
  });
}

/** What the reply is doing while its connection is open: waiting (queued, loading) or being written. */
function progress(r) {
  if (r.writing) return "streaming";
  if (r.loadingModel !== null) return "loading";
  if (r.queuePosition !== null) return "queued";
  return r.started ? "streaming" : "sending";
}

/** The record with `patch` applied; phase follows what the reply is doing unless the patch names one. */
function change(r, patch) {
  const next = { ...r, ...patch };
  if (!("phase" in patch)) next.phase = progress(next); // an event came: the connection is alive
  return Object.freeze(next);
}

/** The reply at its end: the waiting it did means nothing any more. */
function end(r, phase, patch = {}) {
  return Object.freeze({ ...r, queuePosition: null, loadingModel: null, ...patch, phase });
}

// Each event, by name: (record, data) → the record after it (the same record when it changes nothing).
const EVENTS = {
  /** The server took the message: the reply's ids and model. */
  start(r, d) {
    if (isOver(r) || !d) return r;
    return change(r, {
      started: true,
      assistantId: typeof d.assistant_message_id === "string" ? d.assistant_message_id : r.assistantId,
      conversationId: typeof d.conversation_id === "string" ? d.conversation_id : r.conversationId,
      model: typeof d.model === "string" && d.model ? d.model : r.model,
    });
  },
  /** Another reply is being written first; `position` is its place. Stale once a token came. */
  queued(r, d) {
    if (isOver(r) || r.writing) return r;
    const position = d && Number.isInteger(d.position) && d.position > 0 ? d.position : 0;
    return change(r, { queuePosition: position, loadingModel: null });
  },
  /** Its model loads first (the first reply after a switch). Stale once a token came. */
  loading(r, d) {
    if (isOver(r) || r.writing) return r;
    return change(r, { loadingModel: d && typeof d.model === "string" ? d.model : "", queuePosition: null });
  },
  /** A piece of the text: the waiting is over. */
  token(r, d) {
    if (isOver(r) || !d || typeof d.text !== "string") return r;
    return change(r, { text: r.text + d.text, writing: true, queuePosition: null, loadingModel: null });
  },
  /** The reply's stored text, whole (the server no longer has its token boundaries). */
  snapshot(r, d) {
    if (isOver(r) || !d || typeof d.text !== "string") return r;
    return change(r, { text: d.text });
  },
  /** The server's ending, with its figures: its finish reason says how it ended. */
  done(r, d) {
    if (isOver(r)) return r;
    const reason = d && d.finish_reason;
    // "interrupted": the server stopped the generation (it is shutting down); the partial reply is saved.
    const phase = reason === "interrupted" ? "interrupted" : reason === "cancelled" || r.stopped ? "cancelled" : "complete";
    return end(r, phase, { meta: { ...(d || {}) } });
  },
  /** The model or the stream failed; `sentence` says why. */
  error(r, d) {
    if (isOver(r)) return r;
    return end(r, "error", { error: (d && typeof d.sentence === "string" && d.sentence) || null });
  },
  /** The owner pressed Stop. The reply goes on showing until its stream ends. */
  stop(r) {
    if (isOver(r) || r.stopped) return r;
    return Object.freeze({ ...r, stopped: true });
  },
  /** The connection dropped while the reply may still be written: the page picks it up again. */
  lost(r) {
    if (isOver(r) || r.phase === "reconnecting") return r;
    return Object.freeze({ ...r, phase: "reconnecting" });
  },
  /** A connection to the reply opened: it is followed again. */
  open(r) {
    if (r.phase !== "reconnecting") return r;
    return change(r, {});
  },
  /**
   * The stream ended without the server's ending (a done or error event): after Stop the reply is
   * cancelled; otherwise it was cut short (gone, not allowed, no connection for too long).
   */
  closed(r) {
    if (isOver(r)) return r;
    return end(r, r.stopped ? "cancelled" : "interrupted");
  },
};

export const EVENT_NAMES = Object.keys(EVENTS);

/** The reply after `event` (one of EVENT_NAMES) with its data. Pure: the record passed in is not changed. */
export function replyAfter(record, event, data = undefined) {
  if (!Object.hasOwn(EVENTS, event)) throw new Error(`a reply has no event ${event}`);
  return EVENTS[event](record, data);
}

export class ReplyStore {
  constructor() {
    this.record = null;
    this.lastSerial = 0;
    this.listeners = new Set();
  }

  /** A new reply (see newReply); returns its serial, which every later change names. */
  begin(fields = {}) {
    this.lastSerial += 1;
    this.set(newReply({ ...fields, serial: this.lastSerial }));
    return this.lastSerial;
  }

  /** The record of reply `serial`, or null when another reply has begun since (or it was dropped). */
  get(serial) {
    return this.record && this.record.serial === serial ? this.record : null;
  }

  /** Applies an event to reply `serial`; returns the record after it (null: not the current reply). */
  apply(serial, event, data = undefined) {
    const record = this.get(serial);
    if (!record) return null;
    const next = replyAfter(record, event, data);
    if (next !== record) this.set(next);
    return next;
  }

  /** The reply never reached the model: there is no reply to show. */
  drop(serial) {
    if (this.get(serial)) this.set(null);
  }

  set(record) {
    const previous = this.record;
    this.record = record;
    for (const fn of [...this.listeners]) fn(record, previous);
  }

  /** Calls fn(record, previous) after every change; returns a function that unsubscribes. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
