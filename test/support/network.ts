/**
 * A `ws` WebSocket class with a switchable network, for Node integration
 * tests: it can drop the current TCP connection and refuse new ones
 * (connections then go to a closed port) while "offline".
 */
import WebSocket from 'ws';
import type { SocketClass } from '../../src/client/socket.js';

export interface Network {
  WebSocket: SocketClass;
  sockets: WebSocket[];
  /** Terminates every open socket (no close handshake, as a network drop). */
  drop(): void;
  offline: boolean;
}

export function createNetwork(): Network {
  const network: Network = {
    WebSocket: undefined as unknown as SocketClass,
    sockets: [],
    offline: false,
    drop() {
      for (const s of network.sockets) if (s.readyState === WebSocket.OPEN || s.readyState === WebSocket.CONNECTING) s.terminate();
    },
  };
  class NetworkSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      // Port 9 (discard) on loopback refuses at once: a clean "no network".
      super(network.offline ? 'ws://127.0.0.1:9/' : url, protocols);
      this.on('error', () => {}); // reported through onclose; no unhandled 'error'
      network.sockets.push(this);
    }
  }
  network.WebSocket = NetworkSocket as unknown as SocketClass;
  return network;
}

export { waitFor } from './mesh.js';
