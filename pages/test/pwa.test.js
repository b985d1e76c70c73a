// Wake lock around a reply, and the "reply ready" notification: only when hidden and enabled, and
// never any content.
import { test } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh } from "./dom-env.js";
import { Session } from "../src/lib/session.js";
import {
  NOTIFICATION_TEXT, NOTIFY_KEY, ScreenWake, notifyEnabled, notifyReplyReady, notifyToggle, registerServiceWorker,
  installApp, setNotifyEnabled, watchReplies,
} from "../src/lib/pwa.js";

const win = installDom();
const tick = () => new Promise((r) => setImmediate(r));

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), m };
}

/** navigator.wakeLock as the browser gives it: request("screen") → a sentinel; hiding the page releases it. */
function fakeWakeLock() {
  const log = [];
  const held = new Set();
  const wakeLock = {
    async request(type) {
      log.push(`request ${type}`);
      const sentinel = {
        released: false,
        async release() {
          if (sentinel.released) return;
          sentinel.released = true;
          held.delete(sentinel);
          log.push("release");
        },
      };
      held.add(sentinel);
      return sentinel;
    },
  };
  const hide = () => {
    for (const s of [...held]) { s.released = true; held.delete(s); }
  };
  return { nav: { wakeLock }, log, held, hide };
}

function fakeDoc(state = "visible") {
  const listeners = {};
  return {
    visibilityState: state,
    addEventListener: (type, fn) => { (listeners[type] ||= []).push(fn); },
    removeEventListener: (type, fn) => { listeners[type] = (listeners[type] || []).filter((f) => f !== fn); },
    querySelector: () => null,
    fire(type, event = {}) { for (const fn of listeners[type] || []) fn({ type, ...event }); },
  };
}

/** Notification as the browser gives it, recording what would be shown. */
function fakeNotification(permission = "granted") {
  const shown = [];
  function Notif(title, options) { shown.push({ title, options }); }
  Notif.permission = permission;
  Notif.requestPermission = async () => Notif.permission;
  return { Notif, shown };
}

/** watchReplies over a fake wake lock, a fresh session and a visible fake document. */
function watchingReplies() {
  const fake = fakeWakeLock();
  const session = new Session();
  const doc = fakeDoc();
  const stop = watchReplies(session, { wake: new ScreenWake(fake.nav), notify: async () => false, doc });
  return { fake, session, doc, stop };
}

test("the wake lock is taken when a reply starts and released when it ends", async () => {
  const { fake, session, doc, stop } = watchingReplies();
  const stream = { started: false, stopped: false };
  session.set({ stream });
  await tick();
  assert.deepEqual(fake.log, ["request screen"]);
  assert.equal(fake.held.size, 1);
  stream.started = true;
  session.set({ stream: null });
  await tick();
  assert.deepEqual(fake.log, ["request screen", "release"]);
  assert.equal(fake.held.size, 0);
  stop();
});

test("the wake lock is taken again when the page comes back while the reply still streams", async () => {
  const { fake, session, doc, stop } = watchingReplies();
  session.set({ stream: { started: true, stopped: false } });
  await tick();
  fake.hide(); // the browser drops it when the page is hidden
  doc.visibilityState = "hidden";
  doc.fire("visibilitychange");
  await tick();
  assert.equal(fake.held.size, 0);
  doc.visibilityState = "visible";
  doc.fire("visibilitychange");
  await tick();
  assert.equal(fake.held.size, 1, "not re-acquired on visibilitychange");
  session.set({ stream: null });
  await tick();
  assert.equal(fake.held.size, 0);
  // After the reply, coming back does not take it again.
  doc.fire("visibilitychange");
  await tick();
  assert.equal(fake.held.size, 0);
  stop();
});

test("Stop releases the wake lock at once, before the stream ends", async () => {
  const { fake, session, doc, stop } = watchingReplies();
  session.set({ stream: { started: true, stopped: false } });
  await tick();
  const button = fresh('<button id="stop-button">Stop</button>').firstChild;
  doc.fire("click", { target: button });
  await tick();
  assert.equal(fake.held.size, 0);
  stop();
});

test("a reply that ends while the wake lock request is pending does not keep the screen on", async () => {
  const fake = fakeWakeLock();
  const wake = new ScreenWake(fake.nav);
  const acquiring = wake.acquire();
  await wake.release();
  await acquiring;
  assert.equal(fake.held.size, 0);
});

test("no wake lock API, or a refused request: the reply goes on", async () => {
  await new ScreenWake({}).acquire();
  const refused = new ScreenWake({ wakeLock: { request: async () => { throw new Error("NotAllowedError"); } } });
  await refused.acquire();
  await refused.release();
});

test("notifications are off by default; the setting is kept per browser", () => {
  const storage = memoryStorage();
  assert.equal(notifyEnabled(storage), false);
  setNotifyEnabled(true, storage);
  assert.equal(storage.getItem(NOTIFY_KEY), "1");
  assert.equal(notifyEnabled(storage), true);
  setNotifyEnabled(false, storage);
  assert.equal(notifyEnabled(storage), false);
});

test("the notification says only 'reply ready', and only when hidden, enabled and granted", async () => {
  const storage = memoryStorage();
  const { Notif, shown } = fakeNotification("granted");
  const nav = {};
  const hidden = { visibilityState: "hidden" };
  const visible = { visibilityState: "visible" };

  assert.equal(await notifyReplyReady({ doc: hidden, storage, Notif, nav }), false, "shown while disabled");
  setNotifyEnabled(true, storage);
  assert.equal(await notifyReplyReady({ doc: visible, storage, Notif, nav }), false, "shown while visible");
  Notif.permission = "denied";
  assert.equal(await notifyReplyReady({ doc: hidden, storage, Notif, nav }), false, "shown without permission");
  Notif.permission = "granted";
  assert.equal(shown.length, 0);

  assert.equal(await notifyReplyReady({ doc: hidden, storage, Notif, nav }), true);
  assert.equal(shown.length, 1);
  assert.equal(NOTIFICATION_TEXT, "reply ready");
  assert.equal(shown[0].title, "reply ready");
  assert.deepEqual(Object.keys(shown[0].options).sort(), ["icon", "tag"], "the notification carries nothing else");
  assert.equal(shown[0].options.body, undefined);
});

test("through the service worker registration when there is one (Android has no new Notification)", async () => {
  const storage = memoryStorage();
  setNotifyEnabled(true, storage);
  const { Notif, shown } = fakeNotification("granted");
  const viaWorker = [];
  const nav = { serviceWorker: { getRegistration: async () => ({ showNotification: async (title, options) => viaWorker.push({ title, options }) }) } };
  assert.equal(await notifyReplyReady({ doc: { visibilityState: "hidden" }, storage, Notif, nav }), true);
  assert.equal(shown.length, 0);
  assert.deepEqual(viaWorker.map((n) => n.title), ["reply ready"]);
  assert.equal(viaWorker[0].options.body, undefined);
});

test("a finished reply notifies; a stopped, interrupted or never started one does not", async () => {
  const session = new Session();
  const doc = fakeDoc("hidden");
  let calls = 0;
  const wake = new ScreenWake({});
  const stop = watchReplies(session, { wake, notify: async () => { calls += 1; return true; }, doc });
  const finished = { started: false, stopped: false };
  session.set({ stream: finished });
  finished.started = true;
  finished.finished = true; // chat.js, on done
  session.set({ stream: null });
  assert.equal(calls, 1);
  for (const ended of [{ started: true, stopped: true, finished: false }, { started: true, stopped: false },
    { started: false, stopped: false }]) {
    session.set({ stream: ended });
    session.set({ stream: null });
  }
  assert.equal(calls, 1);
  stop();
});

test("the settings toggle asks for permission on the click and stays off when refused", async () => {
  const storage = memoryStorage();
  const { Notif } = fakeNotification("default");
  let asked = 0;
  Notif.requestPermission = async () => { asked += 1; Notif.permission = "denied"; return "denied"; };
  const toggle = notifyToggle({ storage, Notif });
  fresh().append(toggle.element);
  assert.equal(toggle.input.checked, false, "on by default");
  assert.equal(asked, 0, "asked without a gesture");
  toggle.input.checked = true;
  toggle.input.dispatchEvent(new win.Event("change"));
  await tick();
  assert.equal(asked, 1);
  assert.equal(toggle.input.checked, false);
  assert.equal(notifyEnabled(storage), false);
  assert.match(document.querySelector("#setting-notify-note").textContent, /did not allow/);

  const granted = fakeNotification("default").Notif;
  granted.requestPermission = async () => { granted.permission = "granted"; return "granted"; };
  const on = notifyToggle({ storage, Notif: granted });
  fresh().append(on.element);
  on.input.checked = true;
  on.input.dispatchEvent(new win.Event("change"));
  await tick();
  assert.equal(on.input.checked, true);
  assert.equal(notifyEnabled(storage), true);
  on.input.checked = false;
  on.input.dispatchEvent(new win.Event("change"));
  assert.equal(notifyEnabled(storage), false);
});

test("the service worker is registered for /chat/ with its own script", async () => {
  const calls = [];
  const nav = { serviceWorker: { register: async (url, opts) => { calls.push([url, opts]); return { scope: opts.scope }; } } };
  assert.deepEqual(await registerServiceWorker(nav, { pathname: "/chat/" }), { scope: "/chat/" });
  assert.deepEqual(calls, [["/chat/sw.js", { scope: "/chat/" }]]);
  assert.equal(await registerServiceWorker({}, { pathname: "/chat/" }), null);
  assert.equal(await registerServiceWorker(nav, { pathname: "/elsewhere" }), null);
});

test("with the real chat controller: lock while streaming, released and 'reply ready' at done; none on Stop", async () => {
  const { ChatController } = await import("../src/app/chat.js");
  const { MessageList } = await import("../src/components/chat/MessageList.js");
  const { createMarkdown } = await import("../src/lib/markdown.js");
  fresh('<div id="messages"><button id="jump-latest" hidden></button></div>');
  const session = new Session({ device: { deviceId: "d" }, apiOrigin: "http://127.0.0.1:8765", view: "chat" });
  const calls = [];
  const api = {
    chat(req, handlers) {
      return new Promise((resolve, reject) => {
        calls.push({ handlers, resolve });
        req.signal.addEventListener("abort", () => reject(Object.assign(new Error("aborted"), { name: "AbortError" })));
      });
    },
    async cancel() {},
  };
  const messages = new MessageList(document.querySelector("#messages"), createMarkdown(win), document.querySelector("#jump-latest"));
  const chat = new ChatController({ api, session, messages, report: () => "x", refreshHistory() {}, reloadWhenBack() {}, recheck() {} });
  const fake = fakeWakeLock();
  const notes = [];
  const stop = watchReplies(session, { wake: new ScreenWake(fake.nav), notify: async () => notes.push(NOTIFICATION_TEXT), doc: fakeDoc("hidden") });

  chat.send("hello");
  await tick();
  assert.equal(fake.held.size, 1, "no wake lock while the reply streams");
  const { handlers, resolve } = calls[0];
  handlers.onStart({ assistant_message_id: "a1", user_message_id: "u1", conversation_id: "c1" });
  handlers.onToken({ text: "secret words" });
  handlers.onDone({ finish_reason: "stop" });
  resolve();
  await tick();
  assert.equal(fake.held.size, 0);
  assert.deepEqual(notes, ["reply ready"]);

  chat.send("again");
  await tick();
  assert.equal(fake.held.size, 1);
  calls[1].handlers.onStart({ assistant_message_id: "a2", user_message_id: "u2", conversation_id: "c1" });
  await chat.stop();
  await tick();
  assert.equal(fake.held.size, 0);
  assert.deepEqual(notes, ["reply ready"], "a stopped reply is not 'ready'");
  stop();
});

test("the toggle is placed in Settings, after the theme choice, off by default", () => {
  const body = fresh('<button id="settings-button">Settings</button><dialog id="settings-dialog"><fieldset class="theme-group"></fieldset></dialog>');
  const ui = { session: new Session(), settings: { themeGroup: body.querySelector(".theme-group") } };
  const app = installApp(ui, { win });
  app.mountToggle();
  app.mountToggle(); // once only
  const boxes = document.querySelectorAll("#settings-dialog #setting-notify-ready");
  assert.equal(boxes.length, 1);
  assert.equal(boxes[0].closest("fieldset").previousElementSibling, ui.settings.themeGroup);
  assert.equal(boxes[0].checked, false);
  app.stop();
});
