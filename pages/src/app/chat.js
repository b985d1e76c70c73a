// Sending a message and streaming the reply into the message list; Stop; picking the reply up
// again after a drop. The running stream and the open conversation live in the session store; what
// a failure means is worded by report().
//
// A phone locks, switches networks, loses the tunnel: the reply goes on on the server. When the
// stream drops mid-reply the page reattaches (GET /api/chat/<id>/stream with the last event id) at
// once, again on `online` and when the tab becomes visible, and otherwise with backoff; the events
// are merged by their numbers, so the text equals the stored reply with no token twice or missing.

import { ApiError, E2EError, NetworkError } from "../lib/errors.js";
import { EventCursor, retryDelay } from "../lib/resume.js";

const CANCEL_WAIT_MS = 2000;
// No frame for this long (the server sends one every 100 ms, empty when there is nothing to say):
// the connection is dead even if fetch has not noticed (a frozen tab, a phone that slept); reattach.
const STALE_MS = 20000;
// Give up reattaching after this long; the conversation is reloaded when the server is back.
const RESUME_GIVE_UP_MS = 10 * 60 * 1000;
const RECONNECTING = "Connection lost — picking the reply up again…";

const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());

function waitingSentence(position) {
  const place = Number.isInteger(position) && position > 0 ? ` Your place in the queue: ${position}.` : "";
  return `Waiting for the model, another reply is being written.${place}`;
}

function loadingSentence(model) {
  return `Loading ${typeof model === "string" && model ? model : "the model"} — the first reply after a switch waits for it.`;
}

export class ChatController {
  /**
   * @param {{api, session, messages: import("../components/chat/MessageList.js").MessageList,
   *          report: (err, context?: string, opts?: object) => string, refreshHistory: () => void,
   *          reloadWhenBack: (conversationId: string) => void, recheck: () => void}} deps
   *   refreshHistory  the conversation list changed (a new conversation, a new reply)
   *   reloadWhenBack  reload this conversation from the server once the connection is back
   *   recheck         check the connection now
   */
  constructor({ api, session, messages, report, refreshHistory, reloadWhenBack, recheck, keepUnsent = () => false, dropUnsent = () => {},
    onStarted = () => {}, onReplyEnded = () => {}, chosenModel = () => null, attachments = null }) {
    Object.assign(this, { api, session, messages, report, refreshHistory, reloadWhenBack, recheck });
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
    const { session, messages } = this;
    const stream = this.newStream();
    session.set({ stream });
    const reply = messages.add({ role: "assistant", content: "", status: "streaming" });
    const wasNew = !session.state.conversationId;
    const handlers = this.handlers(stream, reply, (d) => {
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
      const stopped = stream.stopped || (err instanceof NetworkError && err.kind === "aborted" && !stream.dropped);
      if (!stream.started && !userView) {
        // A regenerate that never started: say so on the reply; the old reply is one reload away.
        reply.setStatus("error", this.report(err, "send", { stopped }));
      } else if (!stream.started) {
        // Nothing reached the model: keep the text. The kept copy, its note and its buttons (Send now,
        // Discard) are history's (app/history.js); without it, a Retry here.
        messages.removeView(reply);
        const sentence = this.report(err, "send", { stopped });
        if (!this.keepUnsent(text, userView, sentence)) userView.setFailed(sentence, () => this.retry(text, userView));
      } else if (stopped) {
        reply.setStatus("cancelled");
      } else {
        await this.resume(stream, reply, handlers);
      }
    } finally {
      if (session.state.stream === stream) session.set({ stream: null });
      if (stream.started && !wasNew) this.refreshHistory();
      if (stream.started) this.onReplyEnded(session.state.conversationId);
    }
  }

  /**
   * A reply being written that this page did not start (a reload, another device's message): show
   * it from its first event in its view, then live. Called by history when it opens a conversation
   * whose last reply is still streaming.
   */
  async reattach(assistantId, conversationId = null) {
    const { session, messages } = this;
    if (session.state.stream || !assistantId) return;
    if (conversationId && session.state.conversationId && session.state.conversationId !== conversationId) return;
    let reply = messages.views.find((v) => v.el.dataset.id === assistantId);
    if (!reply) reply = messages.add({ id: assistantId, role: "assistant", content: "", status: "streaming" });
    reply.setText("");
    reply.setStatus("streaming");
    const stream = this.newStream({ assistantId, started: true });
    session.set({ stream });
    try {
      await this.resume(stream, reply, this.handlers(stream, reply), { first: true });
    } finally {
      if (session.state.stream === stream) session.set({ stream: null });
    }
  }

  newStream(fields = {}) {
    return {
      ctrl: new AbortController(), assistantId: null, started: false, stopped: false, ended: false, dropped: false,
      cursor: new EventCursor(), firstTokenAt: null, lastByteAt: now(), ...fields,
    };
  }

  /** The stream's event handlers, for the first request and every reattach alike. */
  handlers(stream, reply, onStarted = null) {
    const { session } = this;
    const fresh = (id) => {
      stream.lastByteAt = now();
      return stream.cursor.take(id);
    };
    return {
      onOpen: () => {
        stream.lastByteAt = now();
        if (reply.status === "streaming") reply.hideNotice();
      },
      onPing: () => {
        stream.lastByteAt = now();
      },
      onStart: (d, id) => {
        if (!fresh(id)) return;
        stream.assistantId = d.assistant_message_id;
        if (d.model) reply.model = d.model; // shown quietly under the reply
        reply.setId(d.assistant_message_id);
        if (d.conversation_id && session.state.conversationId !== d.conversation_id) session.set({ conversationId: d.conversation_id });
        if (!stream.started) {
          stream.started = true;
          if (onStarted) onStarted(d);
        }
      },
      onQueued: (d, id) => {
        if (!fresh(id) || stream.firstTokenAt !== null) return;
        reply.el.dataset.queued = String((d && d.position) || "");
        reply.showNotice(waitingSentence(d && d.position));
      },
      onLoading: (d, id) => {
        if (!fresh(id) || stream.firstTokenAt !== null) return;
        delete reply.el.dataset.queued;
        reply.showNotice(loadingSentence(d && typeof d.model === "string" ? this.messages.modelLabel(d.model) : null));
      },
      onToken: (d, id) => {
        if (!fresh(id) || !d || typeof d.text !== "string") return;
        if (stream.firstTokenAt === null) {
          stream.firstTokenAt = now();
          delete reply.el.dataset.queued;
          reply.hideNotice();
        }
        reply.append(d.text);
      },
      onSnapshot: (d) => {
        // The server no longer has this reply's token boundaries: its stored text, whole.
        stream.lastByteAt = now();
        if (d && typeof d.text === "string") reply.setText(d.text);
      },
      onDone: (d, id) => {
        if (!fresh(id) && stream.ended) return;
        stream.ended = true;
        const reason = d && d.finish_reason;
        if (reason === "interrupted") {
          // The server stopped the generation (it is shutting down); the partial reply is saved.
          reply.setStatus("interrupted");
          this.reloadWhenBack(session.state.conversationId);
          setTimeout(() => this.recheck(), 300);
        } else {
          reply.setStatus(reason === "cancelled" || stream.stopped ? "cancelled" : "complete");
          stream.finished = reason !== "cancelled" && !stream.stopped; // pwa.js: "reply ready"
        }
        // The server's figures as it stores them (time to first token included), so the line under
        // the reply says the same after a reload .
        reply.setMeta({ ...(d || {}) });
      },
      onError: (err, id) => {
        if (!fresh(id) && stream.ended) return;
        stream.ended = true;
        reply.setStatus("error", this.report(err));
      },
    };
  }

  /** Reattach until the reply ends, the owner stops it, or the server says it is gone. */
  async resume(stream, reply, handlers, { first = false } = {}) {
    const began = now();
    let attempt = 0;
    if (!first) reply.showNotice(RECONNECTING);
    while (!stream.ended && !stream.stopped) {
      await this.waitToRetry(stream, retryDelay(attempt));
      if (stream.stopped) break;
      stream.ctrl = new AbortController();
      stream.dropped = false;
      stream.lastByteAt = now();
      try {
        await this.api.attach({ assistantId: stream.assistantId, lastEventId: stream.cursor.id, signal: stream.ctrl.signal }, handlers);
        return;
      } catch (err) {
        if (stream.ended) return;
        if (stream.stopped) break;
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
          if (err instanceof E2EError) reply.setStatus("error", this.report(err));
          else reply.setStatus("interrupted");
          this.reloadWhenBack(this.session.state.conversationId);
          this.recheck();
          return;
        }
        attempt += 1;
        reply.showNotice(RECONNECTING);
        if (attempt === 1) this.recheck();
      }
    }
    if (stream.stopped && !stream.ended) reply.setStatus("cancelled");
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
    if (!stream || !stream.started || stream.ended || stream.stopped || this.wakeUp) return;
    stream.dropped = true;
    stream.ctrl.abort();
  }

  /** The network is back or the tab is visible again: reattach now, or drop a stale connection. */
  wake() {
    const stream = this.session.state.stream;
    if (!stream || stream.ended || stream.stopped) return;
    if (this.wakeUp) {
      this.wakeUp();
      return;
    }
    if (stream.started && now() - stream.lastByteAt > STALE_MS) {
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
    if (!stream || stream.stopped) return;
    stream.stopped = true;
    if (this.wakeUp) this.wakeUp(); // a reattach was waiting: it ends as stopped
    if (stream.assistantId) {
      const timeout = new Promise((resolve) => setTimeout(resolve, CANCEL_WAIT_MS));
      await Promise.race([this.api.cancel(stream.assistantId).catch(() => null), timeout]);
    }
    stream.ctrl.abort();
  }
}
