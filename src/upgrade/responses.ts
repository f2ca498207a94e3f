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
 * Refuses an upgrade in a way a browser can read: accept it, then close at
 * once with a code the client acts on (browsers never see an HTTP status of a
 * failed upgrade). Browsers and `ws` fail a handshake that selects no
 * subprotocol when they offered some, so the 101 selects one they offered.
 */
export function refuseUpgrade(request: Request, code: number, reason: string, select?: string): Response {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  server.close(code, closeReason(reason));
  return upgradeResponse(request, client, select);
}

export function isUpgrade(request: Request): boolean {
  return request.headers.get('Upgrade')?.toLowerCase() === 'websocket';
}
