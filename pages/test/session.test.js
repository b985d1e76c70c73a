import { test } from "node:test";
import assert from "node:assert/strict";
import { Session } from "../src/lib/session.js";

test("starts empty, on the loading screen", () => {
  const s = new Session();
  assert.equal(s.state.device, null);
  assert.equal(s.state.view, "loading");
  assert.equal(s.state.stream, null);
  assert.equal(s.state.nextBefore, null);
});

test("subscribers hear about the fields they follow, once per change", () => {
  const s = new Session();
  const heard = [];
  s.subscribe(["conversationId"], (st, changed) => heard.push([st.conversationId, changed]));
  s.set({ conversationId: "c1", view: "chat" });
  s.set({ view: "pairing" });
  s.set({ conversationId: "c1" }); // no change
  s.set({ conversationId: null });
  assert.deepEqual(heard, [["c1", ["conversationId", "view"]], [null, ["conversationId"]]]);
});

test("a subscriber of everything, and unsubscribing", () => {
  const s = new Session();
  let calls = 0;
  const off = s.subscribe(null, () => calls++);
  s.set({ apiOrigin: "http://127.0.0.1:8765" });
  off();
  s.set({ apiOrigin: "http://127.0.0.1:9000" });
  assert.equal(calls, 1);
});

test("the state is read-only and has only the known fields", () => {
  const s = new Session({ device: { deviceId: "d" } });
  assert.throws(() => {
    s.state.device = null;
  }, TypeError);
  assert.throws(() => s.set({ devise: null }), /no field devise/);
  assert.throws(() => s.subscribe(["nope"], () => {}), /no field nope/);
  assert.equal(s.state.device.deviceId, "d");
});

test("a subscriber may set other fields; later subscribers see the newest state", () => {
  const s = new Session();
  const seen = [];
  s.subscribe(["device"], () => s.set({ nextBefore: null, conversationId: "x" }));
  s.subscribe(["device"], (st) => seen.push(st.conversationId));
  s.set({ device: { deviceId: "d" } });
  assert.deepEqual(seen, ["x"]);
});
