// Sentences from describe.js (and the server) mark commands with backticks: `privchat serve`.
// withCode() turns such a sentence into text nodes and <code> elements, never through HTML, so
// whatever the sentence holds stays text.

import { h } from "./dom.js";

/** "start it with `privchat serve`" → ["start it with ", <code>privchat serve</code>] */
export function withCode(text) {
  const parts = String(text ?? "").split(/`([^`\n]+)`/);
  return parts.map((part, i) => (i % 2 ? h("code", {}, part) : part)).filter((p) => p !== "");
}

/** Replaces el's content with the sentence, backticks drawn as <code>. */
export function setCodeText(el, text) {
  while (el.firstChild) el.removeChild(el.firstChild);
  for (const p of withCode(text)) el.appendChild(typeof p === "string" ? el.ownerDocument.createTextNode(p) : p);
  return el;
}
