// What a reply stream's events mean to the chat (backend/privchat's /api/chat and its /stream):
// the transport hands on each opened event as {event, id, data} without knowing its name; this
// turns them into the chat's handlers. Every handler gets (data, eventId), eventId undefined for an
// event without a number; the stream's own error event comes as a StreamError. An event name this
// page does not know (a newer server's) is passed over, so the reply goes on being shown.

import { StreamError } from "./errors.js";

// Events whose data goes to its handler as it is.
const PLAIN = {
  start: "onStart",
  queued: "onQueued",
  loading: "onLoading",
  token: "onToken",
  snapshot: "onSnapshot",
  done: "onDone",
};

/**
 * The transport's {onFrame, onEvent} for a chat's handlers
 * {onPing, onStart, onQueued, onLoading, onToken, onSnapshot, onDone, onError}: onPing for every
 * frame that opens (the stream is alive, events or none), the others by event name.
 */
export function chatEventHandlers(handlers = {}) {
  return {
    onFrame() {
      if (handlers.onPing) handlers.onPing();
    },
    onEvent({ event, id, data }) {
      const eventId = id === null ? undefined : id;
      if (event === "error") {
        if (handlers.onError) handlers.onError(new StreamError(data || {}), eventId);
        return;
      }
      const name = Object.hasOwn(PLAIN, event) ? PLAIN[event] : null;
      if (name && handlers[name]) handlers[name](data, eventId);
    },
  };
}
