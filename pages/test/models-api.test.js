import { test } from "node:test";
import assert from "node:assert/strict";
import { ApiClient } from "../src/lib/api.js";

test("listModels asks GET /api/models through the signed client", async () => {
  const api = new ApiClient("http://127.0.0.1:8765");
  const calls = [];
  api.json = async (method, path) => (calls.push([method, path]), { default: "a", models: [] });
  assert.deepEqual(await api.listModels(), { default: "a", models: [] });
  assert.deepEqual(calls, [["GET", "/api/models"]]);
});

test("chat names the picked model, and leaves it out when none is picked", async () => {
  const api = new ApiClient("http://127.0.0.1:8765");
  const bodies = [];
  api.send = async (method, path, { json }) => (bodies.push([method, path, json]), {});
  api.readReply = async () => undefined;
  await api.chat({ message: "hi", model: "big" });
  await api.chat({ message: "hi" });
  assert.deepEqual(bodies[0], ["POST", "/api/chat", { message: "hi", model: "big" }]);
  assert.equal("model" in bodies[1][2], false);
});
