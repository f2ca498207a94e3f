/**
 * The example server's log (`MESHGATE_LOG`, set by `npm start`): one line per
 * connection, disconnection and refused upgrade at `info`, plus one per call
 * at `debug`. Written with console.log, which workerd prints to the terminal.
 * Names come from clients: control characters are escaped and lines clipped.
 */
import { verifyAccessToken, type AuthOptions } from 'meshgate';

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

const GATEWAY_ROUTE = /^\/gateway\/([^/]+)\/([^/]+)\/?$/;
const TOKEN_PREFIX = 'meshgate.token.';

function tokenOf(request: Request): string | undefined {
  const offered = (request.headers.get('Sec-WebSocket-Protocol') ?? '').split(',').map((p) => p.trim());
  return offered.find((p) => p.startsWith(TOKEN_PREFIX))?.slice(TOKEN_PREFIX.length) || undefined;
}

function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/**
 * Logs why the edge refused an upgrade to a gateway. An HTTP refusal (404, 426)
 * shows in the status; a token refusal is a 101 whose socket the edge closes
 * at once (browsers see no HTTP status), so the token is checked again here,
 * with the edge's own options, only to say why. The token itself is never logged.
 */
export async function logUpgradeOutcome<Env extends LogEnv>(request: Request, response: Response, auth: AuthOptions<Env>, env: Env): Promise<void> {
  if (!logs(env, 'info')) return;
  const route = GATEWAY_ROUTE.exec(new URL(request.url).pathname);
  if (!route) return;
  const target = `${printable(decoded(route[1]!))}/${printable(decoded(route[2]!))}`;
  if (response.status !== 101) {
    const body = await response.clone().text().catch(() => '');
    return log(env, 'info', `refused  ${target}: HTTP ${response.status} ${printable(body)}`);
  }
  const token = tokenOf(request);
  if (!token) return log(env, 'info', `refused  ${target}: 4400 no token (log in first)`);
  try {
    await verifyAccessToken(token, auth, env);
  } catch (error) {
    const code = (error as { closeCode?: number }).closeCode ?? 1011;
    log(env, 'info', `refused  ${target}: ${code} ${printable((error as Error).message)}`);
  }
}
