// Runs the connection state machine (lib/connection.js): asks the server how it is (health, then
// who-am-I for a paired device), feeds the answers to the machine, shows its status and keeps its
// timers (the next check, the retry countdown). Checks again when the tab comes back (focus,
// visible, online); says "offline" when the browser does. A Send (a reply starting to stream, from
// the message box or a Retry) starts any backoff over and checks at once when the server was not fine.

import * as connection from "../lib/connection.js";
import { noteViolation } from "../lib/csp.js";
import { NetworkError } from "../lib/errors.js";

export class ConnectionMonitor {
  /**
   * @param {{api, session, status: import("../components/chat/ConnectionStatus.js").ConnectionStatus,
   *          onEffects?: (effects: object) => void, timers?: object, now?: () => number,
   *          online?: () => boolean, chosenModel?: () => object|null}} opts
   *   onEffects    what a decision means for the rest of the page ({input, pairing, ready})
   *   chosenModel  the entry of the model replies go to (lib/models.js), for the status to name
   *   timers       setTimeout/clearTimeout/setInterval/clearInterval (tests pass fakes)
   */
  constructor({ api, session, status, onEffects = () => {}, timers = globalThis, now = () => Date.now(), online = browserOnline,
    chosenModel = () => null }) {
    this.api = api;
    this.session = session;
    this.status = status;
    this.onEffects = onEffects;
    this.timers = timers;
    this.now = now;
    this.online = online;
    this.chosenModel = chosenModel;
    this.lastSeen = null; // the last check's answers, to name another model without asking again
    this.memory = connection.START;
    this.pollTimer = null;
    this.countdownTimer = null;
    this.running = null;
    session.subscribe(["stream"], (st) => {
      if (st.stream) this.sent();
    });
  }

  /** The owner sent a message: the backoff starts over; check now unless the server was fine. */
  sent() {
    const { memory, check } = connection.afterSend(this.memory);
    this.memory = memory;
    if (check) this.check();
  }

  /** Checks now (a check already running counts); `reset` starts the backoff over (Retry buttons). */
  checkNow(reset = false) {
    if (reset) this.memory = connection.retryNow(this.memory);
    return this.check();
  }

  check() {
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  async run() {
    this.timers.clearTimeout(this.pollTimer);
    if (!this.online()) {
      this.apply(connection.offline(this.memory));
      return;
    }
    const shown = connection.checking(this.memory);
    if (shown) this.status.show(shown);
    const seen = { apiOrigin: this.session.state.apiOrigin };
    try {
      seen.health = await this.api.health();
      // The screen and the device as they are now that the server answered.
      const { view, pairReason, device } = this.session.state;
      seen.pairing = view === "pairing" ? pairReason || "first" : null;
      if (!seen.pairing && device) {
        // Health is plain and may lie, so the key it publishes changes nothing here: the sealed
        // who-am-I answer names the server's current key, and the transport follows a rotation from it.
        seen.me = await this.api.whoAmI();
      }
    } catch (err) {
      seen.error = err;
    }
    this.lastSeen = seen;
    this.apply(connection.decide(this.memory, { ...seen, model: this.chosenModel() }));
  }

  /**
   * The model list or the choice changed: a status that names the model says the new one at once.
   * No effects (every steady state keeps the input on), but the next check moves to the new state's:
   * a list that says the model is loading, read just after a check that found it ready, would
   * otherwise leave "Loading" on screen until the ready state's check 15 s later.
   */
  modelChanged() {
    if (!this.lastSeen || !connection.STEADY.includes(this.memory.state)) return;
    const decision = connection.decide(this.memory, { ...this.lastSeen, model: this.chosenModel() });
    if (!connection.STEADY.includes(decision.memory.state)) return;
    const stateChanged = decision.memory.state !== this.memory.state;
    this.memory = decision.memory;
    this.status.show(decision.status);
    if (stateChanged) this.schedule(decision);
  }

  /** The browser went offline. */
  offline() {
    this.apply(connection.offline(this.memory));
  }

  /**
   * The browser reported a CSP violation: when this page's connect-src blocked the API origin, say
   * so now (the failed request may have been worded before the event came). Nothing is fetched.
   */
  cspViolation(event) {
    const origin = noteViolation(event);
    const apiOrigin = this.session.state.apiOrigin;
    if (!origin || origin !== apiOrigin || this.memory.state === "csp") return;
    this.apply(connection.failed(this.memory, new NetworkError("csp", { origin }), { apiOrigin }));
  }

  /** This device was revoked from this page (the devices dialog). */
  revoked() {
    this.apply(connection.revoked(this.memory));
  }

  /** A request elsewhere failed: the page may have to change (revoked, unknown key, sign-in) or check now. */
  noteError(err) {
    const next = connection.afterRequestError(this.memory, err, { apiOrigin: this.session.state.apiOrigin });
    if (next === "recheck") this.checkNow();
    else if (next) this.apply(next);
  }

  apply(decision) {
    this.memory = decision.memory;
    this.status.show(decision.status);
    this.schedule(decision);
    this.onEffects(decision.effects);
  }

  schedule({ status, delayMs, countdown }) {
    const t = this.timers;
    t.clearTimeout(this.pollTimer);
    t.clearInterval(this.countdownTimer);
    this.pollTimer = null;
    this.countdownTimer = null;
    if (delayMs === null) return;
    this.pollTimer = t.setTimeout(() => this.check(), delayMs);
    if (!countdown) return;
    const due = this.now() + delayMs;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((due - this.now()) / 1000));
      this.status.show(connection.countdown(status, seconds));
    };
    tick();
    this.countdownTimer = t.setInterval(tick, 1000);
  }

  /** Checks when the owner comes back to the tab or the network returns. */
  listen(win = globalThis.window, doc = globalThis.document) {
    win.addEventListener("focus", () => this.checkNow());
    win.addEventListener("online", () => this.checkNow());
    win.addEventListener("offline", () => this.offline());
    doc.addEventListener("securitypolicyviolation", (event) => this.cspViolation(event));
    doc.addEventListener("visibilitychange", () => {
      if (doc.visibilityState === "visible") this.checkNow();
    });
  }
}

function browserOnline() {
  return typeof navigator === "undefined" || navigator.onLine !== false;
}
