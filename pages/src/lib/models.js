// The models store: which models the server offers (GET /api/models) and which one this browser
// chats with. The choice is remembered per API origin in localStorage (`privchat.model.<origin>`):
// only a model's name, which the server's config already holds. A remembered name the server no
// longer lists falls back to the server's default (models.default in its config).
//
//   models   [{name, engine, label, state, error, n_ctx}] as the server sent them ([] until loaded)
//   fallback the server's default model's name (null until loaded)
//   chosen   the name the next message goes to (null: let the server pick its default)

const KEY = "privchat.model.";

export class ModelStore {
  constructor(origin, storage = globalThis.localStorage) {
    this.origin = origin;
    this.storage = storage;
    this.state = Object.freeze({ models: [], fallback: null, chosen: this.remembered() });
    this.listeners = new Set();
  }

  remembered() {
    try {
      return (this.storage && this.storage.getItem(KEY + this.origin)) || null;
    } catch {
      return null;
    }
  }

  set(patch) {
    this.state = Object.freeze({ ...this.state, ...patch });
    for (const fn of [...this.listeners]) fn(this.state);
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The server's answer to GET /api/models. */
  loaded({ default: fallback, models }) {
    const list = Array.isArray(models) ? models : [];
    const wanted = this.remembered();
    const chosen = list.some((m) => m.name === wanted) ? wanted : fallback || (list[0] && list[0].name) || null;
    this.set({ models: list, fallback: fallback || null, chosen });
  }

  /** The chosen model's entry of the server's list, or null until the list is known. */
  chosenEntry() {
    const { models, chosen } = this.state;
    return models.find((m) => m.name === chosen) || null;
  }

  /** A model's label as the config names it for the owner, else its name. */
  labelOf(name) {
    const entry = this.state.models.find((m) => m.name === name);
    return (entry && entry.label) || name;
  }

  /** The owner picked a model: use it from now on, in this browser. */
  choose(name) {
    if (!this.state.models.some((m) => m.name === name)) return;
    try {
      if (this.storage) this.storage.setItem(KEY + this.origin, name);
    } catch {
      /* private browsing: remembered for this tab only */
    }
    this.set({ chosen: name });
  }

  /** Asks the server again (after connecting, and when the picker opens); failures keep the last list. */
  async refresh(api) {
    try {
      this.loaded(await api.listModels());
    } catch {
      /* the connection status says what is wrong; the picker keeps what it showed */
    }
  }
}
