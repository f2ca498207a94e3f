/** The slice of the WebSocket API the client uses: browsers' WebSocket and the `ws` package both fit. */
export interface SocketLike {
  readonly readyState: number;
  /** the subprotocol the server selected ('' or absent where the socket does not tell) */
  readonly protocol?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type SocketClass = new (url: string, protocols?: string | string[]) => SocketLike;

export const SOCKET_OPEN = 1;

/** The WebSocket class to use: the one given, else the global one; Node 20 has none, so it must be given there. */
export function resolveSocketClass(given: SocketClass | undefined): SocketClass {
  if (given) return given;
  const global = (globalThis as { WebSocket?: SocketClass }).WebSocket;
  if (global) return global;
  throw new TypeError("No WebSocket class found. In Node.js 20 pass one: new MeshClient({ WebSocket: (await import('ws')).default, ... }).");
}

/** What a socket's error event says, where the runtime says anything (browsers do not; Node's ws gives the HTTP status of a refused upgrade). */
export function describeSocketError(event: unknown): string | undefined {
  const { message, error } = (event ?? {}) as { message?: unknown; error?: { message?: unknown } };
  const text = typeof message === 'string' && message ? message : typeof error?.message === 'string' ? error.message : undefined;
  return text?.slice(0, 200);
}

export function closeQuietly(ws: SocketLike, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closed
  }
}

/** The gateway's WebSocket URL for one client: `ws(s)://{host}/gateway/{binding}/{instance}` from the app's http(s) base URL. */
export function gatewayUrl(baseUrl: string, binding: string, instanceName: string): string {
  const base = baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '');
  return `${base}/gateway/${encodeURIComponent(binding)}/${encodeURIComponent(instanceName)}`;
}

/** Sends on an open socket; false if it is not open or the send threw (it closed under us). */
export function sendIfOpen(ws: SocketLike | undefined, text: string): boolean {
  if (!ws || ws.readyState !== SOCKET_OPEN) return false;
  try {
    ws.send(text);
    return true;
  } catch {
    return false;
  }
}
