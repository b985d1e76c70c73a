// A conversation's messages as a tree, in pure functions: regenerate and edit add
// siblings, so the page shows one branch at a time, the path from the first message to a leaf, and
// `‹ 2/3 ›` on each message that has siblings. Messages come from the server in the order written
// (every message after its parent); "newest" means written last.

/** Index the messages: byId and the children of each parent (null: the first messages), in order. */
export function indexTree(messages) {
  const byId = new Map();
  const children = new Map();
  for (const m of messages) {
    byId.set(m.id, m);
    const parent = m.parent_id ?? null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(m);
  }
  return { byId, children };
}

/** From a message down, always to its newest answer, to a message nobody answered yet. */
export function newestLeaf(tree, id) {
  let current = id;
  const seen = new Set();
  for (;;) {
    seen.add(current);
    const kids = tree.children.get(current) || [];
    const next = kids[kids.length - 1];
    if (!next || seen.has(next.id)) return current;
    current = next.id;
  }
}

/** The messages from the first to `leafId`, in order; [] when it is not known. */
export function pathTo(tree, leafId) {
  const out = [];
  const seen = new Set();
  let current = leafId ? tree.byId.get(leafId) : null;
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    out.push(current);
    current = current.parent_id ? tree.byId.get(current.parent_id) : null;
  }
  return out.reverse();
}

/** Where a message stands among its siblings: {index (1-based), count, siblings}. */
export function siblingsOf(tree, id) {
  const m = tree.byId.get(id);
  if (!m) return { index: 1, count: 1, siblings: [] };
  const siblings = tree.children.get(m.parent_id ?? null) || [m];
  return { index: siblings.findIndex((s) => s.id === id) + 1, count: siblings.length, siblings };
}

/** The leaf shown after moving `delta` (-1 or +1) among a message's siblings; null at either end. */
export function stepSibling(tree, id, delta) {
  const { index, siblings } = siblingsOf(tree, id);
  const target = siblings[index - 1 + delta];
  return target ? { messageId: target.id, leaf: newestLeaf(tree, target.id) } : null;
}

/** The branch to show: the server's current leaf when it is known, else the newest message's. */
export function currentLeaf(tree, messages, leafId) {
  if (leafId && tree.byId.has(leafId)) return newestLeaf(tree, leafId);
  const last = messages[messages.length - 1];
  return last ? newestLeaf(tree, last.id) : null;
}
