import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { installDom, fresh, key } from "./dom-env.js";
import { Sidebar } from "../src/components/chat/Sidebar.js";
import { Session } from "../src/lib/session.js";

installDom();
let calls;
let session;
let sidebar;
const $ = (sel) => document.querySelector(sel);
const CONVS = [
  { id: "c1", title: "Bread", updated_at: "2024-01-01T10:00:00Z", message_count: 4 },
  { id: "c2", title: "", created_at: 1700000000 },
];

beforeEach(() => {
  fresh('<aside id="sidebar"></aside>');
  calls = [];
  const record = (name) => (...args) => calls.push([name, ...args]);
  const handlers = Object.fromEntries(["onNew", "onSelect", "onDelete", "onExport", "onImport", "onClear", "onLoadMore"].map((n) => [n, record(n)]));
  session = new Session();
  sidebar = new Sidebar($("#sidebar"), handlers, session);
});

const items = () => [...document.querySelectorAll(".conversation-item")].map((li) => [li.dataset.id, li.querySelector(".conversation-title").textContent]);

test("no conversations yet: the note, no Load older", () => {
  sidebar.setConversations([]);
  assert.equal($("#conversation-empty").hidden, false);
  assert.equal($("#load-more").hidden, true);
});

test("lists conversations with their titles; a missing title reads Untitled", () => {
  sidebar.setConversations(CONVS, { hasMore: true });
  assert.deepEqual(items(), [["c1", "Bread"], ["c2", "Untitled conversation"]]);
  assert.match(document.querySelector(".conversation-sub").textContent, / · 4 messages$/);
  assert.equal($("#conversation-empty").hidden, true);
  assert.equal($("#load-more").hidden, false);
  sidebar.setConversations(CONVS.slice(0, 1));
  assert.deepEqual(items(), [["c1", "Bread"]]);
  assert.equal($("#load-more").hidden, true);
});

test("the open conversation (from the session) is marked", () => {
  sidebar.setConversations(CONVS);
  session.set({ conversationId: "c2" });
  const active = () => [...document.querySelectorAll(".conversation-item.active")].map((li) => li.dataset.id);
  assert.deepEqual(active(), ["c2"]);
  assert.equal(document.querySelector('[data-id="c2"] .conversation-open').getAttribute("aria-current"), "true");
  sidebar.setConversations(CONVS); // a reload keeps the mark
  assert.deepEqual(active(), ["c2"]);
  session.set({ conversationId: null });
  assert.deepEqual(active(), []);
});

test("buttons report what the owner asked for", () => {
  sidebar.setConversations(CONVS, { hasMore: true });
  $("#new-conversation").click();
  document.querySelector('[data-id="c1"] .conversation-open').click();
  document.querySelector('[data-id="c1"] .conversation-delete').click();
  $("#export-json").click();
  $("#export-markdown").click();
  $("#clear-history").click();
  $("#load-more").click();
  assert.deepEqual(calls, [
    ["onNew"], ["onSelect", "c1"], ["onDelete", "c1", "Bread"], ["onExport", "json"], ["onExport", "markdown"], ["onClear"], ["onLoadMore"],
  ]);
  assert.equal(document.querySelector('[data-id="c1"] .conversation-delete').getAttribute("aria-label"), "Delete conversation “Bread”");
});

test("the import label works from the keyboard; messages are announced", () => {
  let opened = 0;
  $("#import-file").click = () => opened++;
  key($("#import-label"), "Enter");
  key($("#import-label"), " ");
  assert.equal(opened, 2);
  sidebar.say("Conversation deleted.");
  assert.equal($("#sidebar-message").textContent, "Conversation deleted.");
  assert.equal($("#sidebar-message").getAttribute("role"), "status");
});
