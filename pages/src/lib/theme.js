// The colour theme: "system" (follow prefers-color-scheme), "light" or "dark". A choice of this
// browser only, kept in localStorage and applied as data-theme on <html> (app.css reads it).

const THEME_KEY = "privchat.theme";
export const THEMES = ["system", "light", "dark"];

export function currentTheme(storage = globalThis.localStorage) {
  try {
    const t = storage.getItem(THEME_KEY);
    return t === "light" || t === "dark" ? t : "system";
  } catch {
    return "system";
  }
}

export function applyTheme(theme = currentTheme(), root = globalThis.document.documentElement) {
  if (theme === "light" || theme === "dark") root.dataset.theme = theme;
  else delete root.dataset.theme;
}

/** Keeps the choice (when storage allows) and applies it. */
export function setTheme(theme, { storage = globalThis.localStorage, root } = {}) {
  try {
    if (theme === "system") storage.removeItem(THEME_KEY);
    else storage.setItem(THEME_KEY, theme);
  } catch {
    /* not kept, still applied */
  }
  applyTheme(theme, root);
}
