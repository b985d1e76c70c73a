// Syntax colouring for code blocks in replies: highlight.js (its core, and a small set of languages,
// to keep the page light). highlight.js escapes the code and only wraps parts of it in
// <span class="hljs-…">; the colours are app.css's own (no inline style: the CSP allows none).
// This module only turns code text into highlighted HTML; markdown.js sanitises it with the same
// DOMPurify config as the rest of a reply before it reaches the page.

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const LANGUAGES = { bash, c, cpp, css, go, java, javascript, json, markdown, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
// Never guess among languages outside the registered set (registerLanguage is the only source).
const AUTO_SUBSET = Object.keys(LANGUAGES).filter((name) => name !== "shell"); // a console session: only when named

/** A code block with no language is guessed at only from this many lines on (short ones are often prose). */
export const AUTO_MIN_LINES = 3;
/** …and only when highlight.js is this sure of it. */
export const AUTO_MIN_RELEVANCE = 5;
/** Longer code is left plain: colouring it would cost more than it is worth (replies re-render while they stream). */
export const MAX_CHARS = 100_000;
// The guess reads only the block's first lines (trying every registered grammar is the slow part):
// the block is then coloured as that language.
const GUESS_CHARS = 2_000;

// While a reply streams, it is re-rendered each frame: the code blocks before the last one do not
// change, so their HTML is remembered (a few, by language and text); so is the guess for the last
// one, whose first lines stop changing once written.
const cache = new Map();
const guesses = new Map();
const CACHE_SIZE = 32;

function remember(map, key, value) {
  if (map.size >= CACHE_SIZE) map.delete(map.keys().next().value);
  map.set(key, value);
  return value;
}

/** The registered language a block with no name reads as, or null when highlight.js is not sure. */
function guess(text) {
  let sample = text;
  if (sample.length > GUESS_CHARS) sample = sample.slice(0, sample.lastIndexOf("\n", GUESS_CHARS) + 1 || GUESS_CHARS);
  if (guesses.has(sample)) return guesses.get(sample);
  const result = hljs.highlightAuto(sample, AUTO_SUBSET);
  return remember(guesses, sample, result.language && result.relevance >= AUTO_MIN_RELEVANCE ? result.language : null);
}

/** The registered language a fence's name stands for (its name or an alias), or null. */
export function languageFor(name) {
  if (!name) return null;
  const language = hljs.getLanguage(String(name));
  return language ? String(name).toLowerCase() : null;
}

/**
 * Highlighted HTML for `text`, or null when it should stay plain: a language that is not
 * registered, no language and too few lines (or no confident guess), or too much code.
 * `lang` is the fence's name ("python", "py", "ts"…) or "" for none.
 * The HTML is highlight.js's: the text escaped, parts of it in <span class="hljs-…">.
 */
export function highlightHtml(text, lang = "") {
  text = String(text ?? "");
  if (!text.trim() || text.length > MAX_CHARS) return null;
  const key = `${lang}\0${text}`;
  if (cache.has(key)) return cache.get(key);
  let html = null;
  try {
    const language = lang ? languageFor(lang) : text.replace(/\n+$/, "").split("\n").length >= AUTO_MIN_LINES ? guess(text) : null;
    if (language) html = hljs.highlight(text, { language, ignoreIllegals: true }).value;
  } catch {
    html = null; // a grammar that throws leaves the block plain
  }
  return remember(cache, key, html);
}

/** The class names highlight.js puts on its spans ("hljs-keyword", "hljs-title function_"…). */
export const HLJS_CLASS = /^hljs-[\w-]+(?: [\w-]+_)*$/;
