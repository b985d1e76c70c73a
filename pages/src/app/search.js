// Searching the conversations: what the owner types in the sidebar's box goes to
// POST /api/search (the words in the sealed body, never in a URL) a moment after the last key; the
// newest answer for the latest words is shown, older answers that arrive late are dropped. An
// empty box shows the conversation list again.

const DEBOUNCE_MS = 200;

export class SearchController {
  /**
   * @param {{api, sidebar, report: (err, context?: string) => string, setTimer?: Function, clearTimer?: Function}} deps
   */
  constructor({ api, sidebar, report, setTimer = (f, ms) => setTimeout(f, ms), clearTimer = (t) => clearTimeout(t) }) {
    Object.assign(this, { api, sidebar, report, setTimer, clearTimer });
    this.query = "";
    this.timer = null;
    this.asked = 0; // the number of the latest request; answers to older ones are dropped
  }

  /** The box changed. */
  input(text) {
    this.query = (text || "").trim();
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    if (!this.query) {
      this.asked += 1;
      this.sidebar.setSearchResults(null);
      return;
    }
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.run(this.query);
    }, DEBOUNCE_MS);
  }

  async run(q) {
    const mine = ++this.asked;
    try {
      const res = await this.api.search(q);
      if (mine !== this.asked) return;
      this.sidebar.setSearchResults(res.results || [], { query: q, indexing: Boolean(res.indexing) });
    } catch (err) {
      if (mine !== this.asked) return;
      this.sidebar.say(this.report(err));
    }
  }
}
