import { test } from "node:test";
import assert from "node:assert/strict";
import { JSDOM } from "jsdom";
import { createMarkdown } from "../src/lib/markdown.js";

const { window } = new JSDOM("<!doctype html><html><body></body></html>");
const md = createMarkdown(window);

const PAYLOADS = [
  "<script>alert(1)</script>",
  "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
  '<img src=x onerror="alert(1)">',
  "<img src=x onerror=alert(1)//",
  '<svg onload="alert(1)"><circle r="1"/></svg>',
  "<svg><script>alert(1)</script></svg>",
  "[click](javascript:alert(1))",
  "[click](JaVaScRiPt:alert(1))",
  "[click](  javascript:alert(1))",
  "[click](java\tscript:alert(1))",
  "[click](&#106;avascript:alert(1))",
  "[click](javascript&colon;alert(1))",
  "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
  "[click](vbscript:msgbox(1))",
  "<a href=\"javascript:alert(1)\">x</a>",
  "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
  "![img](javascript:alert(1))",
  '![x](x" onerror="alert(1))',
  '<iframe src="javascript:alert(1)"></iframe>',
  '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
  "<object data=\"javascript:alert(1)\"></object>",
  "<embed src=\"javascript:alert(1)\">",
  '<div style="background:url(javascript:alert(1))">x</div>',
  '<div style="width: expression(alert(1))">x</div>',
  "<style>@import 'javascript:alert(1)';</style>",
  '<a href="x" onmouseover="alert(1)">x</a>',
  '<p title="</p><img src=x onerror=alert(1)>">',
  '"><img src=x onerror=alert(1)>',
  "'><script>alert(1)</script>",
  '<details open ontoggle="alert(1)">',
  '<body onload="alert(1)">',
  '<form action="javascript:alert(1)"><button>x</button></form>',
  '<button formaction="javascript:alert(1)">x</button>',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>',
  '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
  '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
  '<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>',
  '<math><mi><table><mi><mglyph><svg><mtext><textarea><path id="</textarea><img onerror=alert(1) src=1>">',
  "<template><script>alert(1)</script></template>",
  '<base href="javascript:alert(1)//">',
  '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
  '<link rel="stylesheet" href="javascript:alert(1)">',
  "<video><source onerror=\"alert(1)\"></video>",
  '<input autofocus onfocus="alert(1)">',
  "[a](https://ok.example/ \"title\" onclick=alert(1))",
  "```html\n<script>alert(1)</script>\n```",
  "`<img src=x onerror=alert(1)>`",
  "<x onclick=alert(1)>x</x>",
  '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;:alert(1)">x</a>',
];

function inspect(html) {
  const doc = new JSDOM(`<!doctype html><body>${html}</body>`).window.document;
  const problems = [];
  for (const el of doc.body.querySelectorAll("*")) {
    const tag = el.tagName.toLowerCase();
    if (["script", "iframe", "object", "embed", "style", "svg", "math", "form", "base", "meta", "link", "img", "template"].includes(tag)) {
      problems.push(`<${tag}>`);
    }
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) problems.push(`${tag}[${attr.name}]`);
      if (attr.name === "style") problems.push(`${tag}[style]`);
      if (/^(?:href|src|action|formaction|xlink:href|data)$/i.test(attr.name)) {
        const v = attr.value.replace(/[\s\u0000-\u001f]/g, "").toLowerCase();
        if (/^(?:javascript|data|vbscript):/.test(v)) problems.push(`${tag}[${attr.name}=${attr.value}]`);
      }
    }
  }
  return problems;
}

for (const payload of PAYLOADS) {
  test(`inert: ${payload.slice(0, 70)}`, () => {
    const html = md.render(payload);
    assert.ok(!/<script/i.test(html), `script tag in ${html}`);
    // Inside tags only (escaped text such as "&lt;img onerror=…" is inert), with quoted values blanked.
    const tags = (html.match(/<[^>]*>/g) || []).map((t) => t.replace(/"[^"]*"/g, '""'));
    assert.ok(!tags.some((t) => /\son[a-z]+\s*=/i.test(t)), `on* attribute in ${html}`);
    const values = [...html.matchAll(/\s(?:href|src|action|formaction)="([^"]*)"/gi)].map((m) => m[1]);
    assert.ok(!values.some((v) => /^\s*(?:javascript|vbscript|data):/i.test(v)), `script URL in ${html}`);
    assert.deepEqual(inspect(html), [], html);
    // The fragment API must be just as clean.
    const frag = md.renderFragment(payload);
    const div = window.document.createElement("div");
    div.appendChild(frag);
    assert.deepEqual(inspect(div.innerHTML), [], div.innerHTML);
  });
}

test("ordinary markdown survives: code blocks keep their text and language class", () => {
  const html = md.render("# Title\n\nSome **bold** and `code`.\n\n```js\nconst a = '<b>';\n```\n\n- one\n- two\n");
  assert.match(html, /<h1>Title<\/h1>/);
  assert.match(html, /<strong>bold<\/strong>/);
  assert.match(html, /<pre><code class="language-js">const a = '&lt;b&gt;';\n<\/code><\/pre>/);
  assert.match(html, /<li>one<\/li>/);
});

test("links open in a new tab without opener or referrer; http(s) and mailto kept", () => {
  const html = md.render("[site](https://example.org/a?b=1) and <mailto:me@example.org>");
  const doc = new JSDOM(`<body>${html}</body>`).window.document;
  const links = [...doc.querySelectorAll("a")];
  assert.equal(links.length, 2);
  for (const a of links) {
    assert.equal(a.getAttribute("target"), "_blank");
    assert.equal(a.getAttribute("rel"), "noopener noreferrer");
  }
  assert.equal(links[0].getAttribute("href"), "https://example.org/a?b=1");
  assert.equal(links[1].getAttribute("href"), "mailto:me@example.org");
});

test("code inside code spans is shown as text, not markup", () => {
  const html = md.render("`<script>alert(1)</script>`");
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
});

test("tables and task lists render", () => {
  const html = md.render("| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n");
  assert.match(html, /<table>/);
  assert.match(html, /<input[^>]*type="checkbox"/);
  assert.ok(!/<input(?![^>]*disabled)/.test(html), html);
});
