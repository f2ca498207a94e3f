/**
 * What the edge refused, and why, for the server's log. A refused upgrade
 * looks like any other to the client (a 101, then a close), so without a
 * line here the operator sees nothing but the handshake.
 */

/** One refused request to a gateway route. Never carries the token. */
export interface RefusedUpgrade {
  /** `close`: accepted and closed at once with `code`; `http`: answered with HTTP status `code` */
  as: 'close' | 'http';
  code: number;
  reason: string;
  /** the gateway binding and instance name from the path, as the client sent them */
  binding: string;
  instance: string;
  /** the verified identity, once the token checked out (e.g. an instance name of another user, the identity cap) */
  sub?: string;
}

/** Receives every refusal the edge makes; replace it with your own, or pass `false` to `createMeshWorker({ logger })` to silence it. */
export interface EdgeLogger<Env = unknown> {
  /** `env` is the Worker's, e.g. to read a log level from it */
  refused(refusal: RefusedUpgrade, env: Env): void;
}

/** Client-chosen text in a log line: control characters escaped (no forged lines), cut to `max`. */
export function printable(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  // Control characters, line and paragraph separators, and bidi controls, which can forge or reorder what a log viewer shows.
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

export function describeRefusal(refusal: RefusedUpgrade): string {
  const what = `${printable(refusal.binding, 64)}/${printable(refusal.instance)}`;
  const who = refusal.sub === undefined ? '' : ` (sub ${printable(refusal.sub)})`;
  const how = refusal.as === 'close' ? `closed with ${refusal.code}` : `HTTP ${refusal.code}`;
  return `meshgate: refused upgrade to ${what}${who}: ${how} ${printable(refusal.reason)}`;
}

/** Lines the default logger writes per minute per isolate: anyone can send refused upgrades, so the log must not grow with them. */
const LINES_PER_MINUTE = 60;

/** The default: one console.warn line per refusal, at most 60 a minute, then one line saying how many were left out. */
export function consoleEdgeLogger(now: () => number = Date.now): EdgeLogger {
  let windowStart = -Infinity;
  let written = 0;
  let skipped = 0;
  return {
    refused(refusal) {
      const at = now();
      if (at - windowStart >= 60_000) {
        if (skipped > 0) console.warn(`meshgate: ${skipped} more refused upgrades in the last minute were not logged`);
        windowStart = at;
        written = 0;
        skipped = 0;
      }
      if (written >= LINES_PER_MINUTE) {
        skipped++;
        return;
      }
      written++;
      console.warn(describeRefusal(refusal));
    },
  };
}
