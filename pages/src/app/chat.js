// Sending a message and streaming the reply; Stop; picking the reply up again after a drop. The
// reply itself is a record in the reply store (lib/reply-store.js): this hands it the stream's
// events, and the store alone decides what they mean (a queued event after the first token is
// stale, a done after Stop is a cancel…); the message list draws it. Here is only the connection:
// which request, when to ask again, and the session's `stream` (this tab's handle on it).
//
// A phone locks, switches networks, loses the tunnel: the reply goes on on the server. When the
// stream drops mid-reply the page reattaches (GET /api/chat/<id>/stream with the last event id) at
// once, again on `online` and when the tab becomes visible, and otherwise with backoff; the events
// are merged by their numbers, so the text equals the stored reply with no token twice or missing.

import { ApiError, E2EError, NetworkError } from "../lib/errors.js";
import { isOver, ReplyStore } from "../lib/reply-store.js";
import { EventCursor, retryDelay } from "../lib/resume.js";

const CANCEL_WAIT_MS = 2000;
// No frame for this long (the server sends one every 100 ms, empty when there is nothing to say):
// the connection is dead even if fetch has not noticed (a frozen tab, a phone that slept); reattach.
const STALE_MS = 20000;
// Give up reattaching after this long; the conversation is reloaded when the server is back.
const RESUME_GIVE_UP_MS = 10 * 60 * 1000;

const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());

export class ChatController {
  /**
   * @param {{api, session, messages: import("../components/chat/MessageList.js").MessageList,
   *          report: (err, context?: string, opts?: object) => string, refreshHistory: () => void,
   *          reloadWhenBack: (conversationId: string) => void, recheck: () => void}} deps
   *   refreshHistory  the conversation list changed (a new conversation, a new reply)
   *   reloadWhenBack  reload this conversation from the server once the connection is back
   *   recheck         check the connection now
   *   replies         the reply store (lib/reply-store.js); the message list is asked to draw it
   */
  constructor({ api, session, messages, report, refreshHistory, reloadWhenBack, recheck, keepUnsent = () => false, dropUnsent = () => {},
    onStarted = () => {}, onReplyEnded = () => {}, chosenModel = () => null, attachments = null, replies = new ReplyStore() }) {
    Object.assign(this, { api, session, messages, report, refreshHistory, reloadWhenBack, recheck });
    this.replies = replies;
    messages.showReplies(replies);
    // Branches (app/branches.js): a reply's start event puts it in the tree; its end refreshes the tree.
    Object.assign(this, { onStarted, onReplyEnded });
    this.chosenModel = chosenModel; // the picker's model (lib/models.js); null: the server's default
    this.attachments = attachments; // app/attachments.js: the files uploaded for the next message
    // A message that could not be sent is kept (history.js) until it is sent or discarded:
    // keepUnsent(text, view, sentence) → true when it shows the view's note and buttons itself.
    Object.assign(this, { keepUnsent, dropUnsent });
    this.wakeUp = null; // resolves the wait before the next reattach try
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", () => this.wake());
      window.addEventListener("offline", () => this.drop());
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") this.wake();
      });
    }
  }

  /**
   * Returns true when the message was taken (the input box is then cleared). `branch.parentId`:
   * the message it answers (an edit: the edited message's parent; null: a new first message).
   */
  send(text, branch = {}) {
    const { stream, device } = this.session.state;
    if (stream || !device) return false;
    const files = branch.attachments || (this.attachments && !branch.regenerateOf ? this.attachments.take() : []);
    if (files === null) return false; // an attachment still uploads: the text stays in the box
    const userView = this.messages.add({ role: "user", content: text, status: "sending", attachments: files });
    this.run(text, userView, { ...branch, attachments: files });
    return true;
  }

  /** A new reply to the message `assistantId` answered; the old reply is kept (the page truncated the view). */
  regenerate(assistantId) {
    const { stream, device } = this.session.state;
    if (stream || !device) return false;
    this.run(null, null, { regenerateOf: assistantId });
    return true;
  }

  async run(text, userView, branch = {}) {
    const { session, replies } = this;
    const wasNew = !session.state.conversationId;
    const stream = this.newStream(replies.begin({ conversationId: session.state.conversationId }));
    session.set({ stream });
    const handlers = this.handlers(stream, (d) => {
      if (userView) {
        userView.setId(d.user_message_id);
        userView.setStatus("complete");
      }
      this.onStarted(d);
      if (wasNew) this.refreshHistory();
    });
    try {
      await this.api.chat({ conversationId: session.state.conversationId, message: text, signal: stream.ctrl.signal,
        parentId: branch.parentId, regenerateOf: branch.regenerateOf, model: this.chosenModel() || undefined,
        attachments: (branch.attachments || []).map((a) => a.id) }, handlers);
    } catch (err) {
      // Aborted by this page but not because the connection was dead (drop/wake): the owner stopped it.
      if (err instanceof NetworkError && err.kind === "aborted" && !stream.dropped) replies.apply(stream.serial, "stop");
      const reply = replies.get(stream.serial);
      if (!reply.started && !userView) {
        // A regenerate that never started: say so on the reply; the old reply is one reload away.
        replies.apply(stream.serial, "error", { sentence: this.report(err, "send", { stopped: reply.stopped }) });
      } else if (!reply.started) {
        // Nothing reached the model: keep the text. The kept copy, its note and its buttons (Send now,
        // Discard) are history's (app/history.js); without it, a Retry here.
        replies.drop(stream.serial);
        const sentence = this.report(err, "send", { stopped: reply.stopped });
        if (!this.keepUnsent(text, userView, sentence)) userView.setFailed(sentence, () => this.retry(text, userView));
      } else if (reply.stopped) {
        replies.apply(stream.serial, "closed");
      } else {
        await this.resume(stream, handlers);
      }
    } finally {
      const reply = replies.get(stream.serial);
      const started = Boolean(reply && reply.started); // false too when it was dropped (never reached the model)
      if (session.state.stream === stream) session.set({ stream: null });
      if (started && !wasNew) this.refreshHistory();
      if (started) this.onReplyEnded(session.state.conversationId);
    }
  }

  /**
   * A reply being written that this page did not start (a reload, another device's message): show
   * it from its first event (in its view when it is on screen), then live. Called by history when
   * it opens a conversation whose last reply is still streaming.
   */
  async reattach(assistantId, conversationId = null) {
    const { session } = this;
    if (session.state.stream || !assistantId) return;
    if (conversationId && session.state.conversationId && session.state.conversationId !== conversationId) return;
    const stream = this.newStream(this.replies.begin({ assistantId, conversationId, attached: true }));
    session.set({ stream });
    try {
      await this.resume(stream, this.handlers(stream), { first: true });
    } finally {
      if (session.state.stream === stream) session.set({ stream: null });
    }
  }

  /**
   * The session's `stream`: this tab's connection to reply `serial` (the request's abort, the event
   * cursor, when a byte last came). What the reply is (started, stopped, ended…) is the store's.
   */
  newStream(serial) {
    const { replies } = this;
    return {
      serial, ctrl: new AbortController(), dropped: false, cursor: new EventCursor(), lastByteAt: now(),
      // pwa.js: "reply ready" when a stream that ended had reached the reply's own end.
      get finished() {
        const reply = replies.get(serial);
        return Boolean(reply) && reply.phase === "complete";
      },
    };
  }

  /** The reply `stream` follows (null when another reply has begun since). */
  replyOf(stream) {
    return stream ? this.replies.get(stream.serial) : null;
  }

  /** The stream's event handlers, for the first request and every reattach alike: each event goes to the store. */
  handlers(stream, onStarted = null) {
    const { session, replies } = this;
    const apply = (event, data) => replies.apply(stream.serial, event, data);
    const fresh = (id) => {
      stream.lastByteAt = now();
      return stream.cursor.take(id);
    };
    return {
      onOpen: () => {
        stream.lastByteAt = now();
        apply("open");
      },
      onPing: () => {
        stream.lastByteAt = now();
      },
      onStart: (d, id) => {
        if (!fresh(id)) return;
        const before = this.replyOf(stream);
        const after = apply("start", d);
        if (d && d.conversation_id && session.state.conversationId !== d.conversation_id) session.set({ conversationId: d.conversation_id });
        if (before && !before.started && after && after.started && onStarted) onStarted(d);
      },
      onQueued: (d, id) => {
        if (fresh(id)) apply("queued", d);
      },
      onLoading: (d, id) => {
        if (fresh(id)) apply("loading", d);
      },
      onToken: (d, id) => {
        if (fresh(id)) apply("token", d);
      },
      onSnapshot: (d) => {
        stream.lastByteAt = now();
        apply("snapshot", d);
      },
      onDone: (d, id) => {
        fresh(id); // an ending read twice over a seam changes nothing: the store ignores what follows an end
        const before = this.replyOf(stream);
        const after = apply("done", d);
        if (after && after !== before && after.phase === "interrupted") {
          // The server stopped (it is shutting down): what it saved comes with a reload once it is back.
          this.reloadWhenBack(session.state.conversationId);
          setTimeout(() => this.recheck(), 300);
        }
      },
      onError: (err, id) => {
        fresh(id);
        apply("error", { sentence: this.report(err) });
      },
    };
  }

  /** Reattach until the reply ends, the owner stops it, or the server says it is gone. */
  async resume(stream, handlers, { first = false } = {}) {
    const { replies } = this;
    const apply = (event, data) => replies.apply(stream.serial, event, data);
    const reply = () => this.replyOf(stream);
    const ended = () => !reply() || isOver(reply());
    const stopped = () => Boolean(reply()?.stopped);
    const began = now();
    let attempt = 0;
    if (!first) apply("lost");
    while (!ended() && !stopped()) {
      await this.waitToRetry(stream, retryDelay(attempt));
      if (stopped()) break;
      stream.ctrl = new AbortController();
      stream.dropped = false;
      stream.lastByteAt = now();
      try {
        await this.api.attach({ assistantId: reply().assistantId, lastEventId: stream.cursor.id, signal: stream.ctrl.signal }, handlers);
        return;
      } catch (err) {
        if (ended()) return;
        if (stopped()) break;
        // Worth another try: no answer, or a server that is busy or restarting. Anything else (gone,
        // not allowed, a bug) will not get better by asking again.
        // A sealed stream that was cut or broken on the way (docs/E2E.md) is asked for again from the
        // last event that opened: nothing shown twice, nothing lost. A stream that opened but does
        // not follow on from that event (err.sequence) is the server's own answer: asking again gets
        // the same one, so it is said, never skipped over. A refusal without the seal is not
        // believed: it is asked again like a network failure.
        const broken = err instanceof E2EError && !err.sequence && (err.code === "e2e_truncated" || err.code === "e2e_event_invalid");
        const unsealed = err instanceof E2EError && err.code === "e2e_unsealed_refusal";
        const passing = broken || unsealed || err instanceof NetworkError || (err instanceof ApiError && (err.status >= 500 || err.status === 429));
        if (!passing || now() - began > RESUME_GIVE_UP_MS) {
          // Gone (deleted), or this device may no longer read it: what was saved comes with a reload.
          if (err instanceof E2EError) apply("error", { sentence: this.report(err) });
          else apply("closed");
          this.reloadWhenBack(this.session.state.conversationId);
          this.recheck();
          return;
        }
        attempt += 1;
        apply("lost");
        if (attempt === 1) this.recheck();
      }
    }
    if (stopped()) apply("closed"); // stopped while no connection was open: no done will come
  }

  waitToRetry(stream, ms) {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.wakeUp === done) self.wakeUp = null;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  /**
   * The browser says it is offline: a stream open now is dead even if fetch has not noticed (a
   * phone's radio, a network switch). End it; the reattach waits for `online`.
   */
  drop() {
    const stream = this.session.state.stream;
    const reply = this.replyOf(stream);
    if (!reply || !reply.started || isOver(reply) || reply.stopped || this.wakeUp) return;
    stream.dropped = true;
    stream.ctrl.abort();
  }

  /** The network is back or the tab is visible again: reattach now, or drop a stale connection. */
  wake() {
    const stream = this.session.state.stream;
    const reply = this.replyOf(stream);
    if (!reply || isOver(reply) || reply.stopped) return;
    if (this.wakeUp) {
      this.wakeUp();
      return;
    }
    if (reply.started && now() - stream.lastByteAt > STALE_MS) {
      stream.dropped = true;
      stream.ctrl.abort();
    }
  }

  retry(text, userView, unsentId = null) {
    if (this.session.state.stream) return;
    if (unsentId) this.dropUnsent(unsentId);
    this.messages.removeView(userView);
    this.send(text, { attachments: userView.attachments || [] });
  }

  async stop() {
    const stream = this.session.state.stream;
    const reply = this.replyOf(stream);
    if (!stream || (reply && reply.stopped)) return;
    this.replies.apply(stream.serial, "stop");
    if (this.wakeUp) this.wakeUp(); // a reattach was waiting: it ends as stopped
    if (reply && reply.assistantId) {
      const timeout = new Promise((resolve) => setTimeout(resolve, CANCEL_WAIT_MS));
      await Promise.race([this.api.cancel(reply.assistantId).catch(() => null), timeout]);
    }
    stream.ctrl.abort();
  }
}
