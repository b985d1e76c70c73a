// The composer's attach button: a file picker for documents (text, Markdown, CSV, JSON,
// source code, PDF) and images, and one line under the composer for what it has to say (an image
// for a model that cannot see, a refused file). It presents; app/attachments.js does the rest.

import { h, icon } from "../../lib/dom.js";

export const ACCEPT = [
  ".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".xml", ".html", ".css",
  ".js", ".mjs", ".ts", ".tsx", ".jsx", ".py", ".rb", ".go", ".rs", ".java", ".kt", ".c", ".h", ".cpp", ".hpp", ".cs",
  ".swift", ".php", ".sh", ".sql", ".r", ".lua", ".log", ".ini", ".cfg", ".tex", "text/*", "application/json",
  ".pdf", "application/pdf", "image/jpeg", "image/png", "image/webp", "image/*",
].join(",");

const LABEL = "Attach files: documents (text, Markdown, CSV, JSON, code, PDF) and images";

export class AttachButton {
  /** @param {HTMLFormElement} form @param {{onPick: (files: File[]) => void}} handlers */
  constructor(form, { onPick }) {
    this.input = h("input", { id: "attach-input", type: "file", multiple: true, accept: ACCEPT, hidden: true, tabindex: "-1" });
    this.input.addEventListener("change", () => {
      const files = Array.from(this.input.files || []);
      this.input.value = "";
      if (files.length) onPick(files);
    });
    this.button = h("button", { id: "attach-button", type: "button", class: "button attach-button", "aria-label": LABEL, title: LABEL,
      onclick: () => this.input.click() }, icon("paperclip"));
    this.note = h("p", { id: "attach-note", class: "attach-note", role: "status", "aria-live": "polite", hidden: true });
    const buttons = form.querySelector(".input-buttons") || form;
    buttons.insertBefore(this.button, buttons.firstChild);
    form.append(this.input, this.note);
  }

  /** What the button says about images for the chosen model ("… cannot see images"), in its label. */
  setImageHint(text) {
    const label = text ? `${LABEL}. ${text}` : LABEL;
    this.button.setAttribute("aria-label", label);
    this.button.title = label;
    this.button.dataset.vision = text ? "false" : "true";
  }

  say(text) {
    this.note.textContent = text || "";
    this.note.hidden = !text;
  }
}
