// Sending a message and streaming the reply into the message list; Stop. The running stream and
// the open conversation live in the session store; what a failure means is worded by report().

import { NetworkError } from "../lib/errors.js";

const CANCEL_WAIT_MS = 2000;

export class ChatController {
  /**
   * @param {{api, session, messages: import("../components/chat/MessageList.js").MessageList,
   *          report: (err, context?: string, opts?: object) => string, refreshHistory: () => void,
   *          reloadWhenBack: (conversationId: string) => void, recheck: () => void}} deps
   *   refreshHistory  the conversation list changed (a new conversation, a new reply)
   *   reloadWhenBack  reload this conversation from the server once the connection is back
   *   recheck         check the connection now
   */
  constructor({ api, session, messages, report, refreshHistory, reloadWhenBack, recheck }) {
    Object.assign(this, { api, session, messages, report, refreshHistory, reloadWhenBack, recheck });
  }

  /** Returns true when the message was taken (the input box is then cleared). */
  send(text) {
    const { stream, device } = this.session.state;
    if (stream || !device) return false;
    const userView = this.messages.add({ role: "user", content: text, status: "sending" });
    this.run(text, userView);
    return true;
  }

  async run(text, userView) {
    const { session, messages } = this;
    const stream = { ctrl: new AbortController(), assistantId: null, started: false, stopped: false };
    session.set({ stream });
    const reply = messages.add({ role: "assistant", content: "", status: "streaming" });
    const wasNew = !session.state.conversationId;
    try {
      await this.api.chat(
        { conversationId: session.state.conversationId, message: text, signal: stream.ctrl.signal },
        {
          onStart: (d) => {
            stream.started = true;
            stream.assistantId = d.assistant_message_id;
            userView.setId(d.user_message_id);
            userView.setStatus("complete");
            reply.setId(d.assistant_message_id);
            session.set({ conversationId: d.conversation_id });
            if (wasNew) this.refreshHistory();
          },
          onToken: (d) => {
            if (d && typeof d.text === "string") reply.append(d.text);
          },
          onDone: (d) => {
            const reason = d && d.finish_reason;
            if (reason === "interrupted") {
              // The server stopped the generation (it is shutting down); the partial reply is saved.
              reply.setStatus("interrupted");
              this.reloadWhenBack(session.state.conversationId);
              setTimeout(() => this.recheck(), 300);
            } else {
              reply.setStatus(reason === "cancelled" || stream.stopped ? "cancelled" : "complete");
            }
            reply.setMeta(d || {});
          },
          onError: (err) => reply.setStatus("error", this.report(err)),
        },
      );
    } catch (err) {
      const stopped = stream.stopped || (err instanceof NetworkError && err.kind === "aborted");
      if (!stream.started) {
        // Nothing reached the model: keep the text, offer Retry.
        messages.removeView(reply);
        userView.setFailed(this.report(err, "send", { stopped }), () => this.retry(text, userView));
      } else if (stopped) {
        reply.setStatus("cancelled");
      } else {
        reply.setStatus("interrupted");
        this.reloadWhenBack(session.state.conversationId);
        this.recheck();
      }
    } finally {
      if (session.state.stream === stream) session.set({ stream: null });
      if (stream.started && !wasNew) this.refreshHistory();
    }
  }

  retry(text, userView) {
    if (this.session.state.stream) return;
    this.messages.removeView(userView);
    this.send(text);
  }

  async stop() {
    const stream = this.session.state.stream;
    if (!stream || stream.stopped) return;
    stream.stopped = true;
    if (stream.assistantId) {
      const timeout = new Promise((resolve) => setTimeout(resolve, CANCEL_WAIT_MS));
      await Promise.race([this.api.cancel(stream.assistantId).catch(() => null), timeout]);
    }
    stream.ctrl.abort();
  }
}
