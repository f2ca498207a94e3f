import type { RawSocket } from './mesh.js';

/** Stops reading the socket's TCP stream: the gateway's close frame is never seen, so never answered. */
export function deafen(socket: RawSocket): void {
  (socket.ws as unknown as { _socket: { pause(): void } })._socket.pause();
}
