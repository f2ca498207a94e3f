/**
 * Is the current socket alive? A socket must get the gateway's status within
 * the handshake deadline, and once open it is pinged every interval; a ping
 * without a pong in time means the socket is dead, even if no close event
 * ever comes (a half-open TCP connection on a mobile network).
 */
import { HEARTBEAT_PING } from '../protocol/wire.js';
import type { SocketLike } from './socket.js';

export interface LivenessOptions {
  intervalMs: number;
  timeoutMs: number;
  connectTimeoutMs: number;
}

export class Liveness {
  #ping: ReturnType<typeof setInterval> | undefined;
  #pong: ReturnType<typeof setTimeout> | undefined;
  #handshake: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly options: LivenessOptions,
    private readonly onDead: (ws: SocketLike, reason: string) => void,
  ) {}

  /** A new socket: it must be connected (status received) within connectTimeoutMs. */
  created(ws: SocketLike): void {
    this.stop();
    this.#handshake = setTimeout(() => this.onDead(ws, 'Handshake timeout'), this.options.connectTimeoutMs);
  }

  /** The socket opened: ping it; the handshake deadline keeps running until `connected()`. */
  opened(ws: SocketLike): void {
    if (this.#ping) clearInterval(this.#ping);
    this.signOfLife();
    // A first ping at once: the edge closes a refused socket at the client's first frame (see REFUSAL_LINGER_MS).
    try {
      ws.send(HEARTBEAT_PING);
    } catch {
      return; // the close event handles it
    }
    this.#ping = setInterval(() => {
      if (this.#pong) return;
      try {
        ws.send(HEARTBEAT_PING);
      } catch {
        return; // the close event handles it
      }
      this.#pong = setTimeout(() => this.onDead(ws, 'Heartbeat timeout'), this.options.timeoutMs);
    }, this.options.intervalMs);
  }

  /** The gateway's status arrived. */
  connected(): void {
    if (this.#handshake) clearTimeout(this.#handshake);
    this.#handshake = undefined;
  }

  /** Any frame from the gateway, pongs included. */
  signOfLife(): void {
    if (this.#pong) clearTimeout(this.#pong);
    this.#pong = undefined;
  }

  stop(): void {
    if (this.#ping) clearInterval(this.#ping);
    this.#ping = undefined;
    this.connected();
    this.signOfLife();
  }
}
