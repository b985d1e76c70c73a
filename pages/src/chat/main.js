// Entry point of /chat.
import { ChatInterface } from "../components/chat/ChatInterface.js";
import { installApp } from "../lib/pwa.js";

function fail(err) {
  const status = document.getElementById("status");
  if (status) {
    status.dataset.state = "model_error";
    const text = status.querySelector(".status-text") || status;
    text.textContent = `The page failed to start: ${err && err.message ? err.message : err}`;
  }
  console.error(err);
}

function boot() {
  const root = document.getElementById("app");
  const ui = new ChatInterface(root);
  // Service worker, wake lock while a reply streams, the "reply ready" toggle in Settings.
  const app = installApp(ui);
  ui.start().then(() => app.mountToggle(), fail);
  // Handy for debugging in the console; holds no secrets (the key is non-extractable).
  window.privchat = ui;
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot, { once: true });
else boot();
