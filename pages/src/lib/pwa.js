// The installed-app side of the page: the service worker registration, the Screen Wake Lock while a
// reply streams, and the optional local "reply ready" notification (Notification API, no push
// service). Everything here is optional: a browser without one of these APIs just goes without it.

import { h } from "./dom.js";

export const NOTIFY_KEY = "privchat.notifyReplyReady";
/** All a notification ever says: never any content of the conversation. */
export const NOTIFICATION_TEXT = "reply ready";

/** Registers /chat/sw.js (scope /chat/). Resolves to the registration, or null when unsupported or refused. */
export async function registerServiceWorker(nav = globalThis.navigator, loc = globalThis.location) {
  if (!nav || !nav.serviceWorker || typeof nav.serviceWorker.register !== "function") return null;
  if (!loc || !String(loc.pathname || "").startsWith("/chat/")) return null;
  try {
    return await nav.serviceWorker.register("/chat/sw.js", { scope: "/chat/" });
  } catch (err) {
    // e.g. not a secure context, or storage disabled: the page works without it.
    console.warn("privchat: the service worker was not registered:", err && err.message ? err.message : err);
    return null;
  }
}

/**
 * Keeps the screen on while held: acquire() when a reply starts, release() when it ends.
 * The browser drops the lock when the page is hidden; onVisible() takes it again if still wanted.
 */
export class ScreenWake {
  constructor(nav = globalThis.navigator) {
    this.nav = nav;
    this.wanted = false;
    this.sentinel = null;
    this.pending = null;
  }

  get supported() {
    return Boolean(this.nav && this.nav.wakeLock && typeof this.nav.wakeLock.request === "function");
  }

  async acquire() {
    this.wanted = true;
    await this.take();
  }

  async take() {
    if (!this.supported || (this.sentinel && !this.sentinel.released) || this.pending) return;
    this.pending = (async () => {
      try {
        const sentinel = await this.nav.wakeLock.request("screen");
        if (!this.wanted) {
          // The reply ended while the request was on its way.
          await sentinel.release().catch(() => {});
          return;
        }
        this.sentinel = sentinel;
      } catch {
        // Refused (hidden page, battery saver, a Permissions-Policy): the reply streams anyway.
      }
    })();
    try {
      await this.pending;
    } finally {
      this.pending = null;
    }
  }

  async release() {
    this.wanted = false;
    if (this.pending) await this.pending;
    const sentinel = this.sentinel;
    this.sentinel = null;
    if (sentinel && !sentinel.released) await sentinel.release().catch(() => {});
  }

  /** visibilitychange → visible: the browser released the lock when the page was hidden. */
  async onVisible() {
    if (this.wanted) await this.take();
  }
}

/** Whether the owner turned "reply ready" notifications on in this browser (off by default). */
export function notifyEnabled(storage = globalThis.localStorage) {
  try {
    return Boolean(storage) && storage.getItem(NOTIFY_KEY) === "1";
  } catch {
    return false;
  }
}

export function setNotifyEnabled(on, storage = globalThis.localStorage) {
  try {
    if (on) storage.setItem(NOTIFY_KEY, "1");
    else storage.removeItem(NOTIFY_KEY);
  } catch {
    /* storage disabled: the toggle just does not stick */
  }
}

/**
 * Shows "reply ready" when a reply finished while the page was hidden, if the owner enabled it and
 * the browser granted the permission. Returns true when a notification was shown.
 * Through the service worker registration when there is one (Android Chrome has no `new Notification`).
 */
export async function notifyReplyReady({ doc = globalThis.document, storage = globalThis.localStorage,
  Notif = globalThis.Notification, nav = globalThis.navigator } = {}) {
  if (!doc || doc.visibilityState !== "hidden") return false;
  if (!notifyEnabled(storage)) return false;
  if (!Notif || Notif.permission !== "granted") return false;
  const options = { tag: "privchat-reply-ready", icon: "/chat/icon-192.png" };
  try {
    const reg = nav && nav.serviceWorker && typeof nav.serviceWorker.getRegistration === "function"
      ? await nav.serviceWorker.getRegistration("/chat/") : null;
    if (reg && typeof reg.showNotification === "function") {
      await reg.showNotification(NOTIFICATION_TEXT, options);
    } else {
      new Notif(NOTIFICATION_TEXT, options); // eslint-disable-line no-new
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Follows the session's `stream` field: a reply started → wake lock; it ended → release, and
 * "reply ready" if it finished (`stream.finished`, which asks the reply store whether it ended complete) while the page was hidden.
 * @returns {() => void} unsubscribe
 */
export function watchReplies(session, { wake = new ScreenWake(), notify = notifyReplyReady, doc = globalThis.document } = {}) {
  let current = null;
  const unsubscribe = session.subscribe(["stream"], (state) => {
    const stream = state.stream;
    if (stream && !current) {
      current = stream;
      wake.acquire();
    } else if (!stream && current) {
      const ended = current;
      current = null;
      wake.release();
      // the reply store says a reply reached its end (`finished`); a stopped, failed or interrupted one is not ready.
      if (ended.finished === true) notify();
    } else if (stream && current && stream !== current) {
      current = stream; // a new stream replaced the old one at once: keep the lock
    }
  });
  // Stop (the button, or Esc outside a dialog) releases at once, without waiting for the cancel
  // request to come back; the stream itself ends a moment later.
  const onStop = (e) => {
    if (!current || !e) return;
    const target = e.target;
    const button = e.type === "click" && target && typeof target.closest === "function" && target.closest("#stop-button");
    const escape = e.type === "keydown" && e.key === "Escape" && !(doc.querySelector && doc.querySelector("dialog[open]"));
    if (button || escape) wake.release();
  };
  const onVisibility = () => {
    if (doc.visibilityState === "visible" && current) wake.onVisible();
  };
  if (doc && typeof doc.addEventListener === "function") {
    doc.addEventListener("visibilitychange", onVisibility);
    doc.addEventListener("click", onStop, true);
    doc.addEventListener("keydown", onStop, true);
  }
  return () => {
    unsubscribe();
    if (doc && typeof doc.removeEventListener === "function") {
      doc.removeEventListener("visibilitychange", onVisibility);
      doc.removeEventListener("click", onStop, true);
      doc.removeEventListener("keydown", onStop, true);
    }
  };
}

/**
 * The settings control: a checkbox "Tell me when a reply is ready (this browser only)". Turning it on
 * asks for the permission (this runs in the click, a user gesture); refused → stays off, says why.
 */
export function notifyToggle({ storage = globalThis.localStorage, Notif = globalThis.Notification } = {}) {
  const input = h("input", { type: "checkbox", id: "setting-notify-ready" });
  const note = h("p", { id: "setting-notify-note", class: "form-status", role: "status", "aria-live": "polite" });
  const group = h("fieldset", { class: "theme-group notify-group" },
    h("legend", {}, "Notifications (this browser only)"),
    h("div", { class: "radio" }, input,
      h("label", { for: "setting-notify-ready" }, "Say “reply ready” when a reply finishes while privchat is in the background")),
    note);
  const refresh = () => {
    input.checked = notifyEnabled(storage) && Boolean(Notif) && Notif.permission === "granted";
    if (!Notif) {
      input.disabled = true;
      note.textContent = "This browser cannot show notifications.";
    } else if (Notif.permission === "denied") {
      note.textContent = "Notifications are blocked for this site in the browser's settings.";
    }
  };
  input.addEventListener("change", async () => {
    note.textContent = "";
    if (!input.checked) {
      setNotifyEnabled(false, storage);
      return;
    }
    let permission = Notif ? Notif.permission : "denied";
    if (Notif && permission === "default") {
      try {
        permission = await Notif.requestPermission();
      } catch {
        permission = "denied";
      }
    }
    if (permission === "granted") {
      setNotifyEnabled(true, storage);
    } else {
      setNotifyEnabled(false, storage);
      input.checked = false;
      note.textContent = "The browser did not allow notifications, so they stay off.";
    }
  });
  refresh();
  return { element: group, input, refresh };
}

/** Everything above, for the page: called once from main.js. */
export function installApp(ui, { win = globalThis.window } = {}) {
  registerServiceWorker();
  const stop = watchReplies(ui.session);
  let toggle = null;
  const mountToggle = () => {
    const anchor = ui.settings && ui.settings.themeGroup;
    if (!anchor || toggle || typeof anchor.after !== "function") return;
    toggle = notifyToggle();
    anchor.after(toggle.element);
    const button = win && win.document && win.document.getElementById("settings-button");
    if (button) button.addEventListener("click", () => toggle.refresh());
  };
  return { mountToggle, stop };
}
