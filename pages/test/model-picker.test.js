import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh } from "./dom-env.js";
import { ModelPicker } from "../src/components/chat/ModelPicker.js";
import { ModelStore } from "../src/lib/models.js";
import { modelOptionText } from "../src/lib/describe.js";

installDom();
const $ = (sel) => document.querySelector(sel);

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(k) {
    return this.items.has(k) ? this.items.get(k) : null;
  }
  setItem(k, v) {
    this.items.set(k, String(v));
  }
}

const LIST = {
  default: "small",
  models: [
    { name: "small", engine: "embedded", state: "ready", error: null, n_ctx: 2048 },
    { name: "big", engine: "openai", state: "unreachable", error: "The model server at http://10.0.0.5:8080/v1 is not answering.", n_ctx: null },
    { name: "other", engine: "embedded", label: "Other GGUF", state: "unloaded", error: null, n_ctx: 2048 },
  ],
};

let storage;
beforeEach(() => {
  fresh('<form id="input-form"><textarea></textarea></form>');
  storage = new MemoryStorage();
});

test("the picker lists the server's models with their state and picks the server's default", () => {
  const store = new ModelStore("http://127.0.0.1:8765", storage);
  new ModelPicker($("#input-form"), store, { onChoose: (n) => store.choose(n) });
  assert.equal($(".model-picker-wrap").hidden, true, "hidden before the list arrives");
  store.loaded(LIST);
  const options = [...document.querySelectorAll("#model-picker option")].map((o) => o.textContent);
  assert.deepEqual(options, ["small", "big — not answering", "Other GGUF — loads when used"]);
  assert.equal($("#model-picker").value, "small");
  assert.equal(store.state.chosen, "small");
  assert.equal($(".model-picker-wrap").hidden, false);
  assert.match(document.querySelectorAll("#model-picker option")[1].title, /not answering/);
});

test("a choice is remembered per API origin and survives a reload; an unknown one falls back to the default", () => {
  const first = new ModelStore("http://127.0.0.1:8765", storage);
  new ModelPicker($("#input-form"), first, { onChoose: (n) => first.choose(n) });
  first.loaded(LIST);
  const select = $("#model-picker");
  select.value = "other";
  select.dispatchEvent(new window.Event("change"));
  assert.equal(first.state.chosen, "other");

  const reloaded = new ModelStore("http://127.0.0.1:8765", storage);
  reloaded.loaded(LIST);
  assert.equal(reloaded.state.chosen, "other");
  const elsewhere = new ModelStore("https://chat-api.example.com", storage);
  elsewhere.loaded(LIST);
  assert.equal(elsewhere.state.chosen, "small");
  reloaded.loaded({ default: "small", models: LIST.models.filter((m) => m.name !== "other") });
  assert.equal(reloaded.state.chosen, "small");
});

test("one model only: no picker", () => {
  const store = new ModelStore("o", storage);
  new ModelPicker($("#input-form"), store, { onChoose: () => {} });
  store.loaded({ default: "small", models: [LIST.models[0]] });
  assert.equal($(".model-picker-wrap").hidden, true);
});

test("refresh keeps the last list when the request fails", async () => {
  const store = new ModelStore("o", storage);
  store.loaded(LIST);
  await store.refresh({ listModels: async () => { throw new Error("offline"); } });
  assert.equal(store.state.models.length, 3);
  await store.refresh({ listModels: async () => ({ default: "big", models: LIST.models.slice(0, 2) }) });
  assert.equal(store.state.models.length, 2);
  assert.equal(store.state.chosen, "big");
});

test("state words come from describe.js", () => {
  assert.equal(modelOptionText({ name: "a", state: "loading" }), "a — loading…");
  assert.equal(modelOptionText({ name: "a", state: "error" }), "a — failed");
  assert.equal(modelOptionText({ name: "a", state: "ready" }), "a");
});

test("the chosen model's entry: null until the list arrives, then the picked one", () => {
  const store = new ModelStore("http://127.0.0.1:8765", storage);
  assert.equal(store.chosenEntry(), null);
  store.loaded(LIST);
  assert.equal(store.chosenEntry().name, "small");
  store.choose("other");
  assert.equal(store.chosenEntry().name, "other");
  assert.equal(store.labelOf("other"), "Other GGUF");
  assert.equal(store.labelOf("small"), "small", "no label: the name");
  assert.equal(store.labelOf("gone"), "gone");
});
