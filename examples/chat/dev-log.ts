/**
 * The example server's log (`MESHGATE_LOG`, set by `npm start`): one line per
 * connection, disconnection and refused upgrade at `info`, plus one per call
 * at `debug`. Written with console.log, which workerd prints to the terminal.
 * Names come from clients: control characters are escaped and lines clipped.
 */
export type LogLevel = 'off' | 'info' | 'debug' | 'trace';
const RANK: Record<LogLevel, number> = { off: 0, info: 1, debug: 2, trace: 3 };

export interface LogEnv {
  MESHGATE_LOG?: string;
}

export function logs(env: LogEnv, level: 'info' | 'debug'): boolean {
  return (RANK[env.MESHGATE_LOG as LogLevel] ?? 0) >= RANK[level];
}

/** A client-supplied name, safe to print: no control characters, at most 80 characters. */
export function printable(text: unknown): string {
  const clean = String(text).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > 80 ? `${clean.slice(0, 79)}…` : clean;
}

export function log(env: LogEnv, level: 'info' | 'debug', text: string): void {
  if (!logs(env, level)) return;
  const time = new Date().toISOString().slice(11, 19);
  console.log(`[${time}] ${text}`);
}
