/**
 * The browser's WebSocket, remembered so the page can drop the connection on
 * purpose. A drop closes the socket from this side, as a network hiccup
 * would end it; MeshClient sees an ordinary close and reconnects by itself,
 * and the gateway starts its grace period.
 *
 * "Go offline" also makes new connections fail for a while: they go to the
 * Worker's /__offline route, which refuses the upgrade without touching any
 * gateway — so the gateway sees exactly what a real outage looks like.
 */
import type { SocketClass } from 'meshgate/client';

export const DROP_CLOSE_CODE = 4000;

const live = new Set<WebSocket>();
let offlineUntil = 0;

class DroppableSocket extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(Date.now() < offlineUntil ? new URL('/__offline', url) : url, protocols);
    live.add(this);
    this.addEventListener('close', () => live.delete(this));
  }
}

export const DroppableWebSocket = DroppableSocket as unknown as SocketClass;

/** Closes every open socket; returns how many it closed. */
export function dropConnections(): number {
  let dropped = 0;
  for (const socket of live) {
    if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
      socket.close(DROP_CLOSE_CODE, 'Dropped by the user');
      dropped++;
    }
  }
  return dropped;
}

/** Drops the connection and refuses new ones for `ms`; then fires `online`, as the browser does when the network returns. */
export function goOffline(ms: number, onBack: () => void): void {
  offlineUntil = Date.now() + ms;
  dropConnections();
  setTimeout(() => {
    offlineUntil = 0;
    onBack();
    window.dispatchEvent(new Event('online')); // MeshClient reconnects at once on `online`
  }, ms);
}
