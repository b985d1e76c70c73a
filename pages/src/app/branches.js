// The open conversation's tree: every branch the server keeps, the branch on screen, and
// the actions that change it. Regenerate asks for a new reply to the same message and Edit sends a
// new version of a message; both keep the old branch. `‹ 2/3 ›` switches between siblings and
// follows the chosen one down to its newest end; the choice is sent to the server
// (PATCH current_leaf), so a reload and the owner's other devices open the same branch.
//
// The store is the conversation's messages as the server sent them (lib/tree.js reads them); the
// message list only presents the path to the current leaf.

import { currentLeaf, indexTree, pathTo, siblingsOf, stepSibling } from "../lib/tree.js";

export class BranchController {
  /**
   * @param {{api, session, messages: import("../components/chat/MessageList.js").MessageList,
   *          report: (err, context?: string) => string, say: (text: string) => void,
   *          chat: () => import("./chat.js").ChatController}} deps
   *   say   where a failure is told (the sidebar's note)
   *   chat  the chat controller (built after this one): sends, regenerates
   *   untitled  a reply ended in a conversation still titled by its first message: the model may
   *             write a title soon (the wiring reloads the list a little later)
   */
  constructor({ api, session, messages, report, say, chat, untitled = () => {} }) {
    Object.assign(this, { api, session, messages, report, say, chat, untitled });
    this.conversationId = null;
    this.list = [];
    this.tree = indexTree([]);
    this.leaf = null;
    messages.actions = {
      onSibling: (view, delta) => this.switchSibling(view.id, delta),
      onRegenerate: (view) => this.regenerate(view),
      onEdit: (view, text) => this.edit(view, text),
    };
    session.subscribe(["conversationId"], (st) => {
      if (st.conversationId !== this.conversationId && !(this.conversationId === null && st.stream)) this.reset(st.conversationId);
    });
  }

  reset(conversationId = null) {
    this.conversationId = conversationId;
    this.list = [];
    this.tree = indexTree([]);
    this.leaf = null;
  }

  /** A conversation from the server: keep its tree, show its current branch; returns the path shown. */
  load(conv) {
    this.take(conv);
    return this.render();
  }

  /** Keep the server's tree without touching the screen (after a reply ended here). */
  take(conv) {
    this.conversationId = conv.id;
    this.list = conv.messages || [];
    this.tree = indexTree(this.list);
    this.leaf = currentLeaf(this.tree, this.list, conv.current_leaf);
  }

  /** Shows the current branch; `anchor` ({id, offset}) keeps that message where it is on screen. */
  render(anchor = null) {
    const path = pathTo(this.tree, this.leaf);
    this.messages.show(path, { anchor });
    this.markSiblings();
    return path;
  }

  /** `‹ i/n ›` on each message on screen that has siblings. */
  markSiblings() {
    for (const view of this.messages.views) {
      if (view.id && this.tree.byId.has(view.id)) view.setBranch(siblingsOf(this.tree, view.id));
    }
  }

  async switchSibling(messageId, delta) {
    if (this.session.state.stream) return;
    const step = stepSibling(this.tree, messageId, delta);
    if (!step) return;
    this.leaf = step.leaf;
    // The chosen version takes the place of the one shown: the owner keeps reading where they were.
    const shown = this.messages.views.find((v) => v.id === messageId);
    this.render({ id: step.messageId, offset: this.messages.offsetOf(shown) });
    try {
      await this.api.setCurrentLeaf(this.conversationId, step.messageId);
    } catch (err) {
      this.say(this.report(err));
    }
  }

  /** A new reply to the same message; the old one stays, one arrow away. */
  regenerate(view) {
    const m = this.tree.byId.get(view.id);
    if (!m || this.session.state.stream || !this.session.state.device) return;
    this.messages.truncateFrom(view);
    this.chat().regenerate(m.id);
  }

  /** The edited text as a new version of the message: a new branch from its parent. */
  edit(view, text) {
    const m = this.tree.byId.get(view.id);
    if (!m || this.session.state.stream || !this.session.state.device) {
      view.renderNow();
      return;
    }
    this.messages.truncateFrom(view);
    this.chat().send(text, { parentId: m.parent_id ?? null });
  }

  /** A reply started (the chat's start event): its messages join the tree, its branch is current. */
  started(d) {
    if (!d || !d.assistant_message_id) return;
    if (d.conversation_id && d.conversation_id !== this.conversationId) this.reset(d.conversation_id);
    const add = (m) => {
      if (this.tree.byId.has(m.id)) return;
      this.list = [...this.list, m];
      this.tree = indexTree(this.list);
    };
    if (!d.regenerate_of) add({ id: d.user_message_id, parent_id: d.user_parent_id ?? null, role: "user", content: "", status: "complete" });
    add({ id: d.assistant_message_id, parent_id: d.user_message_id, role: "assistant", content: "", status: "streaming" });
    this.leaf = d.assistant_message_id;
    this.markSiblings();
  }

  /** A reply ended: fetch the tree again (texts and counts as stored), without redrawing. */
  async ended(conversationId) {
    if (!conversationId || conversationId !== this.session.state.conversationId) return;
    try {
      const conv = await this.api.getConversation(conversationId);
      if (conv.id !== this.session.state.conversationId || this.session.state.stream) return;
      if (conv.title_source === "first_message") this.untitled(conv.id);
      const leaf = this.leaf;
      this.take(conv);
      if (leaf && this.tree.byId.has(leaf)) this.leaf = leaf;
      this.markSiblings();
    } catch {
      /* the next open shows it; the reply on screen is whole */
    }
  }
}
