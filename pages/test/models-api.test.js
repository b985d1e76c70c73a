import { test } from "node:test";
import assert from "node:assert/strict";
import { ApiClient } from "../src/lib/api.js";

/** A transport that answers every request with `answer` and keeps what it was asked. */
function recordingTransport(answer = {}) {
  return {
    origin: "http://127.0.0.1:8765",
    asked: [],
    async json(method, path, opts = {}) {
      this.asked.push([method, path, opts.json]);
      return answer;
    },
    async send(method, path, opts = {}) {
      this.asked.push([method, path, opts.json]);
      return {};
    },
    async readEvents() {},
  };
}

test("listModels asks GET /api/models through the client's transport", async () => {
  const transport = recordingTransport({ default: "a", models: [] });
  const api = new ApiClient("http://127.0.0.1:8765", { transport });
  assert.deepEqual(await api.listModels(), { default: "a", models: [] });
  assert.deepEqual(transport.asked, [["GET", "/api/models", undefined]]);
  assert.equal(api.origin, "http://127.0.0.1:8765", "the origin is the transport's");
});

test("chat names the picked model, and leaves it out when none is picked", async () => {
  const transport = recordingTransport();
  const api = new ApiClient("http://127.0.0.1:8765", { transport });
  await api.chat({ message: "hi", model: "big" });
  await api.chat({ message: "hi" });
  assert.deepEqual(transport.asked[0], ["POST", "/api/chat", { message: "hi", model: "big" }]);
  assert.equal("model" in transport.asked[1][2], false);
});
