// A jsdom window installed as the globals the page's components use (document, Node,
// requestAnimationFrame…), for component tests in node. Each test file runs in its own process,
// so one window per file is enough; fresh() gives each test an empty body.
import { JSDOM } from "jsdom";

export function installDom(html = "<!doctype html><html><body></body></html>") {
  const dom = new JSDOM(html, { pretendToBeVisual: true, url: "http://127.0.0.1:8080/chat/" });
  const w = dom.window;
  // jsdom has <dialog> but not its modal methods.
  w.HTMLDialogElement.prototype.showModal = function showModal() {
    this.setAttribute("open", "");
  };
  w.HTMLDialogElement.prototype.close = function close() {
    if (!this.hasAttribute("open")) return;
    this.removeAttribute("open");
    this.dispatchEvent(new w.Event("close"));
  };
  const names = ["window", "document", "Node", "HTMLElement", "Event", "KeyboardEvent", "requestAnimationFrame", "cancelAnimationFrame", "localStorage"];
  for (const name of names) {
    Object.defineProperty(globalThis, name, { value: name === "window" ? w : w[name], configurable: true, writable: true });
  }
  Object.defineProperty(globalThis, "navigator", { value: w.navigator, configurable: true, writable: true });
  return w;
}

/** An empty body with the given markup. */
export function fresh(html = "") {
  document.body.innerHTML = html;
  return document.body;
}

/** Waits for the next animation frame (streamed text is rendered once per frame). */
export function frame() {
  return new Promise((resolve) => requestAnimationFrame(() => resolve()));
}

/** Lets pending promise callbacks run. */
export async function settle(times = 5) {
  for (let i = 0; i < times; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

export function key(target, keyName, opts = {}) {
  const ev = new KeyboardEvent("keydown", { key: keyName, bubbles: true, cancelable: true, ...opts });
  target.dispatchEvent(ev);
  return ev;
}

/**
 * Wait until `condition()` is true: the page's work is asynchronous (sealing goes through
 * WebCrypto's thread pool), so on a busy machine it may take more turns than on a quiet one.
 * Fails after `timeoutMs` with `what`.
 */
export async function until(condition, what = "the condition", timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
