// Markdown rendering for replies: marked for the syntax, DOMPurify for safety.
// Whatever the model writes, the output holds no script, no event handler attributes,
// no javascript:/data: links and no frames; links open in a new tab without a referrer.

import { Marked } from "marked";
import createDOMPurify from "dompurify";
import { highlightHtml, HLJS_CLASS } from "./highlight.js";

const ALLOWED_TAGS = [
  "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
  "hr", "i", "input", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup",
  "table", "tbody", "td", "th", "thead", "tr", "ul", "div",
];
const ALLOWED_ATTR = ["href", "title", "class", "type", "checked", "disabled", "align", "start", "colspan", "rowspan"];
// http(s) and mailto links only; relative links are kept (they point at the page's own site).
const SAFE_URL = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  // Models often open a fence with an empty line ("```python\n\nprint(1)"): the code starts at its
  // first line that has something on it, not with a blank line .
  walkTokens(token) {
    if (token.type === "code" && typeof token.text === "string") token.text = token.text.replace(/^(?:[ \t]*\n)+/, "");
  },
});

/**
 * Builds a renderer. In the browser call createMarkdown() (uses window);
 * in Node pass a window from jsdom: createMarkdown(new JSDOM("").window).
 */
export function createMarkdown(win = globalThis.window) {
  if (!win) throw new Error("markdown rendering needs a DOM window");
  const purify = createDOMPurify(win);
  let highlighting = false; // hljs-… classes are kept only in highlight.js's own output (highlight below)

  purify.addHook("uponSanitizeAttribute", (node, data) => {
    if (data.attrName === "href") {
      const v = String(data.attrValue || "").trim();
      if (!SAFE_URL.test(v) || /^\s*(?:javascript|data|vbscript):/i.test(v)) {
        data.keepAttr = false;
      }
    }
    if (data.attrName === "class" && !/^(?:language-[\w+#.-]+|task-list-item(?:-checkbox)?|contains-task-list)$/.test(String(data.attrValue))
      && !(highlighting && HLJS_CLASS.test(String(data.attrValue)))) {
      data.keepAttr = false;
    }
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      if (node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    }
    if (node.tagName === "INPUT") {
      // Only GFM task-list checkboxes, and only as inert display.
      if (node.getAttribute("type") !== "checkbox") node.remove();
      else node.setAttribute("disabled", "");
    }
  });

  const config = {
    ALLOWED_TAGS,
    ALLOWED_ATTR: [...ALLOWED_ATTR, "target", "rel"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ALLOWED_URI_REGEXP: SAFE_URL,
    FORBID_TAGS: ["style", "script", "iframe", "object", "embed", "form", "svg", "math", "img", "video", "audio", "source", "link", "meta", "base", "template"],
    FORBID_ATTR: ["style", "srcset", "src", "action", "formaction", "xlink:href"],
    KEEP_CONTENT: true,
    WHOLE_DOCUMENT: false,
    SAFE_FOR_TEMPLATES: false,
  };

  /** Markdown → sanitized HTML string. */
  function render(text) {
    const html = marked.parse(String(text ?? ""));
    return purify.sanitize(html, config);
  }

  /** Markdown → sanitized DocumentFragment (never goes through innerHTML unsanitized). */
  function renderFragment(text) {
    return purify.sanitize(marked.parse(String(text ?? "")), { ...config, RETURN_DOM_FRAGMENT: true });
  }

  /**
   * Colours a rendered code block (<code class="language-…">, or one with no language) in place:
   * its text is replaced by highlight.js's spans, sanitised with the config above. The text stays
   * exactly the same (or the block is left as it was). Returns whether it was coloured.
   */
  function highlight(code) {
    const text = code.textContent;
    const lang = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className || "");
    const html = highlightHtml(text, lang ? lang[1] : "");
    if (html == null) return false;
    let fragment;
    highlighting = true;
    try {
      fragment = purify.sanitize(html, { ...config, RETURN_DOM_FRAGMENT: true });
    } finally {
      highlighting = false;
    }
    if (fragment.textContent !== text) return false; // never show anything but the code itself
    code.replaceChildren(fragment);
    code.classList.add("hljs");
    return true;
  }

  return { render, renderFragment, highlight, purify };
}
