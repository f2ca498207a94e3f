/** The WebSocket upgrade's responses, shared by the edge (refusals) and the gateway (accept, refusals). */
import { TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/wire.js';

/** The subprotocols a WebSocket upgrade offers, in order. */
export function offeredSubprotocols(request: Request): string[] {
  return (request.headers.get('Sec-WebSocket-Protocol') ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
}

/**
 * The 101 response for an accepted socket, selecting `select` (one the client
 * offered), else the first subprotocol offered that is not the token.
 */
export function upgradeResponse(request: Request, client: WebSocket, select?: string): Response {
  const protocol = select ?? offeredSubprotocols(request).find((p) => !p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
  const headers = protocol === undefined ? undefined : { 'Sec-WebSocket-Protocol': protocol };
  return new Response(null, { status: 101, webSocket: client, ...(headers ? { headers } : {}) });
}

/** A close reason workerd accepts: at most 123 UTF-8 bytes, cut on a character boundary. */
export function closeReason(text: string): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= 123) return text;
  return new TextDecoder().decode(bytes.slice(0, 123)).replace(/\uFFFD+$/, ''); // a cut character decodes to U+FFFD
}

/**
 * How long a stateless Worker keeps a refused socket open for the client's
 * first frame. Local workerd behind `wrangler dev` reports a socket that a
 * Worker ends before the client has sent anything as an uncaught "Network
 * connection lost"; closing once the first frame (meshgate's client pings on
 * open) has arrived avoids it. A Durable Object's sockets need no wait.
 */
export const REFUSAL_LINGER_MS = 250;

/**
 * Refuses an upgrade in a way a browser can read: accept it, then close with
 * a code the client acts on (browsers never see an HTTP status of a failed
 * upgrade) — at once, or with `lingerMs` at the client's first frame and at
 * the latest after that long. Browsers and `ws` fail a handshake that selects
 * no subprotocol when they offered some, so the 101 selects one they offered.
 */
export function refuseUpgrade(request: Request, code: number, reason: string, select?: string, lingerMs = 0): Response {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  const close = (): void => {
    clearTimeout(timer);
    try {
      server.close(code, closeReason(reason));
    } catch {
      // the client closed first
    }
  };
  const timer = lingerMs > 0 ? setTimeout(close, lingerMs) : undefined;
  if (timer === undefined) close();
  else {
    server.addEventListener('message', close, { once: true });
    server.addEventListener('close', () => clearTimeout(timer), { once: true });
  }
  return upgradeResponse(request, client, select);
}

export function isUpgrade(request: Request): boolean {
  return request.headers.get('Upgrade')?.toLowerCase() === 'websocket';
}
