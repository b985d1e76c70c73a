// Before a long message is sent: does the model read all of it? The server counts it in the
// model's own tokens (POST /api/tokens: llama.cpp's tokenizer for a model in this process, an
// estimate for a model server) against `room`, what a message can have with the reply's share of
// the context kept. A message that does not fit is not sent on the first press: the page says so
// under the box (describe.js words it), and a second Send of the same text sends it anyway (the
// model then reads its end, and the reply says the start was cut).

import { tooLongText } from "../lib/describe.js";

// Shorter messages are not asked about: even at a token per character they fit every model the
// page can pick (a context of 256 tokens, the config's smallest, keeps room for this and more).
export const CHECK_FROM_CHARS = 200;

export class MessageFit {
  /** @param {{api, chosenModel?: () => object|null, say: (sentence: string|null) => void}} deps */
  constructor({ api, chosenModel = () => null, say }) {
    Object.assign(this, { api, chosenModel, say });
    this.warned = null; // the text the owner was told about: sending it again sends it
  }

  /** Resolves true when `text` may be sent now; false after saying it is longer than the model reads. */
  async allows(text) {
    if (text.length < CHECK_FROM_CHARS || text === this.warned) {
      this.clear();
      return true;
    }
    const chosen = this.chosenModel();
    let count;
    try {
      count = await this.api.countTokens(text, { model: (chosen && chosen.name) || undefined });
    } catch {
      return true; // the count is a courtesy: the send itself says what went wrong
    }
    if (!count || !Number.isInteger(count.room) || count.tokens <= count.room) {
      this.clear();
      return true;
    }
    this.warned = text;
    this.say(tooLongText(count, (chosen && (chosen.label || chosen.name)) || count.model));
    return false;
  }

  clear() {
    this.warned = null;
    this.say(null);
  }
}
