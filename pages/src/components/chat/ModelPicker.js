// The model picker in the composer: a select of the server's models with each one's state; it
// shows the models store and reports the owner's pick. Hidden while the server offers one model.

import { h } from "../../lib/dom.js";
import { modelOptionText } from "../../lib/describe.js";

export class ModelPicker {
  /**
   * @param {HTMLElement} root  where the picker goes (the composer)
   * @param {import("../../lib/models.js").ModelStore} store
   * @param {{onChoose: (name: string) => void, onOpen?: () => void}} handlers
   */
  constructor(root, store, { onChoose, onOpen = () => {} }) {
    this.select = h("select", { id: "model-picker", name: "model", class: "model-picker", "aria-label": "Model" });
    this.el = h("div", { class: "model-picker-wrap", hidden: true }, this.select);
    root.insertBefore(this.el, root.firstChild);
    this.select.addEventListener("change", () => onChoose(this.select.value));
    this.select.addEventListener("focus", () => onOpen());
    store.subscribe((state) => this.show(state));
    this.show(store.state);
  }

  show({ models, chosen }) {
    this.el.hidden = models.length < 2;
    this.select.replaceChildren(
      ...models.map((m) => h("option", { value: m.name, title: m.error || "" }, modelOptionText(m))),
    );
    if (chosen) this.select.value = chosen;
  }
}
