// Origins this page's own Content-Security-Policy kept it from reaching. A request its connect-src
// does not allow fails exactly like one to a server that is down (a TypeError, nothing more), so
// the page would say "start the server" to an owner whose server runs. The browser does say it,
// though, in a `securitypolicyviolation` event: noted here, the transport then reports such a
// failure as NetworkError "csp" (describe.js says which origin the policy lacks and what to do).
// A policy cannot change without a reload, so what is noted stays for the page's life.

const blocked = new Set();

/** The origin a connect-src violation blocked, or null for any other violation. */
export function blockedOrigin(event) {
  const directive = String((event && (event.effectiveDirective || event.violatedDirective)) || "");
  if (!directive.startsWith("connect-src")) return null;
  try {
    return new URL(event.blockedURI).origin;
  } catch {
    return null; // "inline", "eval" or an empty URI: not a connection
  }
}

/** Notes a violation event; returns the origin it blocked (null when it was not a connection). */
export function noteViolation(event) {
  const origin = blockedOrigin(event);
  if (origin) blocked.add(origin);
  return origin;
}

/** Has this page's policy blocked a connection to `origin`? */
export function cspBlocks(origin) {
  return Boolean(origin) && blocked.has(origin);
}

/** For tests. */
export function forgetCspBlocks() {
  blocked.clear();
}
