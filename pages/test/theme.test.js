import { test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import { applyTheme, currentTheme, setTheme } from "../src/lib/theme.js";

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), m };
}

test("the choice is kept and applied as data-theme; system removes both", () => {
  const root = new JSDOM("").window.document.documentElement;
  const storage = memoryStorage();
  assert.equal(currentTheme(storage), "system");
  setTheme("dark", { storage, root });
  assert.equal(root.dataset.theme, "dark");
  assert.equal(currentTheme(storage), "dark");
  setTheme("system", { storage, root });
  assert.equal(root.dataset.theme, undefined);
  assert.equal(storage.m.size, 0);
});

test("blocked or odd storage: system, and a choice still applies", () => {
  const root = new JSDOM("").window.document.documentElement;
  const blocked = { getItem() { throw new Error("denied"); }, setItem() { throw new Error("denied"); }, removeItem() {} };
  assert.equal(currentTheme(blocked), "system");
  setTheme("light", { storage: blocked, root });
  assert.equal(root.dataset.theme, "light");
  const odd = memoryStorage();
  odd.setItem("privchat.theme", "purple");
  assert.equal(currentTheme(odd), "system");
  applyTheme("purple", root);
  assert.equal(root.dataset.theme, undefined);
});
