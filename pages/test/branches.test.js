// Branches in the page: the tree (lib/tree.js), the branch controller following `‹ i/n ›`,
// regenerate and edit, the search box with marked snippets, rename in the sidebar.
import { test } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh } from "./dom-env.js";
import { currentLeaf, indexTree, pathTo, siblingsOf, stepSibling } from "../src/lib/tree.js";
import { BranchController } from "../src/app/branches.js";
import { SearchController } from "../src/app/search.js";
import { MessageList } from "../src/components/chat/MessageList.js";
import { Sidebar } from "../src/components/chat/Sidebar.js";
import { Session } from "../src/lib/session.js";

installDom();

// q1 → a1 → q2 → a2; q1 → a1' (regenerated); q1' (edited first message) → a3
const M = (id, parent_id, role, content = id) => ({ id, parent_id, role, content, status: "complete" });
const MESSAGES = [M("q1", null, "user"), M("a1", "q1", "assistant"), M("q2", "a1", "user"), M("a2", "q2", "assistant"),
  M("a1b", "q1", "assistant"), M("q1b", null, "user"), M("a3", "q1b", "assistant")];

test("tree: paths, siblings, stepping to a sibling's newest end", () => {
  const tree = indexTree(MESSAGES);
  assert.deepEqual(pathTo(tree, "a2").map((m) => m.id), ["q1", "a1", "q2", "a2"]);
  assert.deepEqual(siblingsOf(tree, "a1b"), { index: 2, count: 2, siblings: [MESSAGES[1], MESSAGES[4]] });
  assert.deepEqual(siblingsOf(tree, "q1").count, 2);
  assert.deepEqual(stepSibling(tree, "a1b", -1), { messageId: "a1", leaf: "a2" });
  assert.deepEqual(stepSibling(tree, "q1", 1), { messageId: "q1b", leaf: "a3" });
  assert.equal(stepSibling(tree, "q1", -1), null);
  assert.equal(currentLeaf(tree, MESSAGES, "q1"), "a1b"); // a server leaf inside a branch goes to its newest end
  assert.equal(currentLeaf(tree, MESSAGES, null), "a3");
  assert.equal(currentLeaf(tree, [], null), null);
});

function setup() {
  fresh('<div id="messages"></div><button id="jump"></button>');
  const session = new Session();
  session.set({ device: { id: "d" }, conversationId: "c1" });
  const messages = new MessageList(document.getElementById("messages"), { renderFragment: (t) => document.createTextNode(t) }, document.getElementById("jump"));
  const calls = [];
  const api = { setCurrentLeaf: async (...a) => calls.push(["leaf", ...a]), getConversation: async () => ({ id: "c1", messages: MESSAGES, current_leaf: "a2" }) };
  const chat = { send: (...a) => calls.push(["send", ...a]), regenerate: (...a) => calls.push(["regenerate", ...a]) };
  const branches = new BranchController({ api, session, messages, report: String, say: () => {}, chat: () => chat });
  return { session, messages, calls, branches };
}

const shown = (messages) => messages.views.map((v) => v.id);
const nav = (messages, id) => {
  const view = messages.views.find((v) => v.id === id);
  const count = view.el.querySelector(".branch-count");
  return count ? count.textContent : null;
};

test("branches: the current branch, ‹ i/n ›, switching is sent to the server", async () => {
  const { messages, calls, branches } = setup();
  branches.load({ id: "c1", messages: MESSAGES, current_leaf: "a2" });
  assert.deepEqual(shown(messages), ["q1", "a1", "q2", "a2"]);
  assert.equal(nav(messages, "q1"), "1/2");
  assert.equal(nav(messages, "a1"), "1/2");
  assert.equal(nav(messages, "q2"), null);
  messages.views[1].el.querySelector(".branch-next").click();
  await Promise.resolve();
  assert.deepEqual(shown(messages), ["q1", "a1b"]);
  assert.equal(nav(messages, "a1b"), "2/2");
  assert.deepEqual(calls, [["leaf", "c1", "a1b"]]);
  messages.views[0].el.querySelector(".branch-next").click();
  assert.deepEqual(shown(messages), ["q1b", "a3"]);
});

test("regenerate and edit: the views below go, the chat is asked for the new branch", () => {
  const { messages, calls, branches, session } = setup();
  branches.load({ id: "c1", messages: MESSAGES, current_leaf: "a2" });
  messages.views[3].el.querySelector(".regenerate").click();
  assert.deepEqual(shown(messages), ["q1", "a1", "q2"]);
  assert.deepEqual(calls.pop(), ["regenerate", "a2"]);
  // The start event of the new reply joins the tree: ‹ 2/2 › on it.
  branches.started({ conversation_id: "c1", user_message_id: "q2", assistant_message_id: "a2b", regenerate_of: "a2" });
  const reply = messages.add({ id: "a2b", role: "assistant", content: "new", status: "complete" });
  branches.markSiblings();
  assert.equal(reply.el.querySelector(".branch-count").textContent, "2/2");

  branches.load({ id: "c1", messages: MESSAGES, current_leaf: "a2" });
  messages.views[2].el.querySelector(".edit").click();
  const box = messages.views[2].el.querySelector(".edit-box");
  box.value = "q2, better";
  messages.views[2].el.querySelector(".edit-save").click();
  assert.deepEqual(shown(messages), ["q1", "a1"]);
  assert.deepEqual(calls.pop(), ["send", "q2, better", { parentId: "a1" }]);
  branches.load({ id: "c1", messages: MESSAGES, current_leaf: "a2" });
  messages.views[0].el.querySelector(".edit").click();
  messages.views[0].el.querySelector(".edit-save").click();
  assert.deepEqual(calls.pop(), ["send", "q1", { parentId: null }]); // the first message: a new first message
  session.set({ stream: { x: 1 } });
  assert.equal(calls.length, 0);
});

test("search: the newest answer for the latest words, snippets marked as DOM nodes, rename", async () => {
  fresh('<aside id="sidebar"></aside>');
  const calls = [];
  const sidebar = new Sidebar(document.getElementById("sidebar"), {
    onSelect: (id) => calls.push(["open", id]), onRename: (id, t) => calls.push(["rename", id, t]), onSearch: () => {},
  }, new Session());
  sidebar.setConversations([{ id: "c1", title: "Bread" }]);
  const timers = [];
  const answers = { old: { results: [] }, flour: { results: [{ conversation_id: "c9", title: "T", message_id: "m",
    snippet: "<b>use</b> flour and 😊 Flour", highlights: [[11, 16], [23, 28]], updated_at: 1700000000 }], indexing: false } };
  const api = { search: async (q) => answers[q] };
  const search = new SearchController({ api, sidebar, report: String, setTimer: (f) => timers.push(f), clearTimer: () => {} });
  search.input("old");
  search.input("flour");
  await timers[1]();
  await timers[0](); // the older answer arrives last: dropped
  const result = document.querySelector("#search-results .search-result");
  assert.equal(document.getElementById("conversation-list").hidden, true);
  assert.deepEqual([...result.querySelectorAll("mark")].map((m) => m.textContent), ["flour", "Flour"]);
  assert.equal(result.querySelector("b"), null); // text, never HTML
  result.querySelector(".conversation-open").click();
  assert.deepEqual(calls.pop(), ["open", "c9"]);
  search.input("");
  assert.equal(document.getElementById("search-results").hidden, true);
  assert.equal(document.getElementById("conversation-list").hidden, false);

  document.querySelector(".conversation-rename").click();
  const box = document.querySelector(".rename-box");
  box.value = "Sourdough";
  box.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Enter" }));
  assert.deepEqual(calls.pop(), ["rename", "c1", "Sourdough"]);
  assert.equal(document.querySelector(".conversation-title").textContent, "Sourdough");
});

test("describe: the branch refusals have their own sentences", async () => {
  const { describe } = await import("../src/lib/describe.js");
  const { ApiError } = await import("../src/lib/errors.js");
  for (const code of ["parent_invalid", "regenerate_invalid"]) {
    const { text } = describe(new ApiError(400, code, "server words"), { context: "send" });
    assert.match(text, /no longer/);
    assert.doesNotMatch(text, /server words/);
  }
});
