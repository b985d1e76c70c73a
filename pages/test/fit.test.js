// A message longer than the model reads is said before it is sent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MessageFit, CHECK_FROM_CHARS } from "../src/app/fit.js";
import { contextNotes, tooLongText } from "../src/lib/describe.js";

function fakeApi(answer) {
  return {
    calls: [],
    async countTokens(text, opts) {
      this.calls.push([text.length, opts]);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

const LONG = "The quick brown fox jumps over the lazy dog. ".repeat(320); // about 2,800 words

test("a message longer than the model reads is not sent on the first press, and says why", async () => {
  const api = fakeApi({ tokens: 3215, n_ctx: 2048, room: 1490, exact: true, model: "smollm2" });
  const said = [];
  const fit = new MessageFit({ api, chosenModel: () => ({ name: "smollm2", label: "SmolLM2" }), say: (s) => said.push(s) });
  assert.equal(await fit.allows(LONG), false);
  assert.deepEqual(api.calls, [[LONG.length, { model: "smollm2" }]]);
  const sentence = said.at(-1);
  assert.match(sentence, /This message is 3,215 tokens, longer than SmolLM2 can read: at most 1,490/);
  assert.match(sentence, /its context is 2,048 tokens/);
  assert.match(sentence, /the start of it is cut/);
  assert.match(sentence, /press Send again to send it anyway/);
  // The same text again: sent, and the note goes.
  assert.equal(await fit.allows(LONG), true);
  assert.equal(said.at(-1), null);
  assert.equal(api.calls.length, 1);
});

test("short messages are not counted; a message that fits, or a count that fails, is sent", async () => {
  const fits = fakeApi({ tokens: 100, n_ctx: 2048, room: 1490, exact: true, model: "m" });
  const fit = new MessageFit({ api: fits, say: () => {} });
  assert.equal(await fit.allows("x".repeat(CHECK_FROM_CHARS - 1)), true);
  assert.equal(fits.calls.length, 0);
  assert.equal(await fit.allows(LONG), true);
  assert.deepEqual(fits.calls[0][1], { model: undefined });
  assert.equal(await new MessageFit({ api: fakeApi(new Error("down")), say: () => {} }).allows(LONG), true);
  // An upstream whose context is not known: no room, nothing to say.
  const unknown = fakeApi({ tokens: 9000, n_ctx: null, room: null, exact: false, model: "gpu" });
  assert.equal(await new MessageFit({ api: unknown, say: () => {} }).allows(LONG), true);
});

test("an estimate says about; the reply's notes say what the model did not read", () => {
  assert.match(tooLongText({ tokens: 3000, n_ctx: null, room: 1000, exact: false }, "gpu"), /^This message is about 3,000 tokens, longer than gpu can read: at most 1,000\. /);
  assert.deepEqual(contextNotes({ message_cut: false, dropped_messages: 0 }), []);
  assert.match(contextNotes({ message_cut: true, dropped_messages: 4 })[0], /the start of it was cut, so the model read only its end \(and none of the earlier messages\)\.$/);
  assert.match(contextNotes({ message_cut: true, dropped_messages: 0 })[0], /read only its end\.$/);
  assert.match(contextNotes({ dropped_messages: 1 })[0], /did not read the earliest message of this conversation/);
  assert.match(contextNotes({ dropped_messages: 6 })[0], /did not read the 6 earliest messages/);
});
