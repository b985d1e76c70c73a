// Chips for attached files: the name and size of each, its state while it uploads or
// why it was refused, and × to take back one not sent yet. Used twice: under the message box (the
// files waiting to be sent) and on a sent message (what went with it). It only presents.

import { h, clear, icon } from "../../lib/dom.js";
import { chipText } from "../../lib/attachments.js";

/** One chip. `a`: {name, size, pages?, kind?, status?: "uploading"|"ready"|"failed", error?}. */
export function chip(a, { onRemove = null } = {}) {
  const { name, detail } = chipText(a);
  const status = a.status || "ready";
  const el = h("span", { class: "attachment-chip", dataset: { kind: a.kind || "document", status }, title: a.error || name },
    h("span", { class: "attachment-icon", "aria-hidden": "true" }, icon(a.kind === "image" ? "image" : "document")),
    h("span", { class: "attachment-name" }, name),
    detail ? h("span", { class: "attachment-size" }, detail) : null,
    status === "uploading" ? h("span", { class: "attachment-state" }, "uploading…") : null,
    onRemove ? h("button", { type: "button", class: "attachment-remove", "aria-label": `Remove ${name}`, onclick: () => onRemove(a) }, "×") : null);
  if (a.error) el.append(h("span", { class: "attachment-error" }, a.error));
  return el;
}

/** A message's chips (no ×): a sent message's attachments. */
export function chipRow(attachments) {
  if (!Array.isArray(attachments) || !attachments.length) return null;
  return h("div", { class: "attachment-row", "aria-label": "Attached files" }, attachments.map((a) => chip(a)));
}

export class AttachmentChips {
  /** @param {HTMLElement} parent @param {{onRemove: (item) => void}} handlers */
  constructor(parent, { onRemove }, before = null) {
    this.onRemove = onRemove;
    this.el = h("div", { id: "attachment-chips", class: "attachment-row pending", "aria-label": "Files to send", hidden: true });
    parent.insertBefore(this.el, before);
  }

  show(items) {
    clear(this.el).append(...items.map((item) => chip(item, { onRemove: this.onRemove })));
    this.el.hidden = items.length === 0;
  }
}
