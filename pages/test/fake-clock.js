// Timers a test moves by hand: setTimeout/setInterval/clear* and now(), for code that takes its
// clock as a parameter (the connection monitor). Shared by the monitor and reopen tests.

export function fakeClock(start = 0) {
  let now = start;
  let next = 1;
  const pending = new Map();
  const add = (fn, ms, every) => {
    const id = next++;
    pending.set(id, { fn, at: now + ms, every });
    return id;
  };
  /** The next timer due by `end`, taken off (or moved on, for an interval), with the clock set to it. */
  const takeDue = (end) => {
    const due = [...pending.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
    if (!due) return null;
    const [id, t] = due;
    now = t.at;
    if (t.every) t.at += t.every;
    else pending.delete(id);
    return t;
  };
  return {
    now: () => now,
    setTimeout: (fn, ms) => add(fn, ms, 0),
    setInterval: (fn, ms) => add(fn, ms, ms),
    clearTimeout: (id) => pending.delete(id),
    clearInterval: (id) => pending.delete(id),
    pending,
    /** Moves time on, firing each timer due on the way, in order. */
    advance(ms) {
      const end = now + ms;
      for (let t = takeDue(end); t; t = takeDue(end)) t.fn();
      now = end;
    },
    /** The same, letting each check the monitor starts (an async health request) finish before the next timer. */
    async advanceSettling(ms, monitor) {
      const end = now + ms;
      for (let t = takeDue(end); t; t = takeDue(end)) {
        t.fn();
        if (monitor.running) await monitor.running;
      }
      now = end;
    },
  };
}
