/**
 * A client's network, under the test's control: a `ws` WebSocket class whose
 * sockets can be dropped without a close frame (as a dead network does) and
 * whose new connections are refused while the network is cut.
 */
import WebSocket from 'ws';
import type { SocketClass } from '../client/socket.js';

/** Port 9 (discard) on loopback refuses at once: a connection attempt that fails like "no network". */
const UNREACHABLE = 'ws://127.0.0.1:9/';

interface Internals {
  _receiver: { once(event: 'conclude', listener: () => void): void } | null;
}

export class ClientNetwork {
  readonly WebSocket: SocketClass;
  #sockets = new Set<WebSocket>();
  #cut = false;
  /** sockets this network has opened so far (a test can count reconnects) */
  opened = 0;

  constructor() {
    const network = this;
    class ControlledSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(network.#cut ? UNREACHABLE : url, protocols);
        network.opened++;
        network.#sockets.add(this);
        this.on('error', () => {}); // the client learns of it from the close event
        this.once('close', () => network.#sockets.delete(this));
        // workerd can keep the TCP connection of a socket it closed open for seconds, and ws reports the
        // close only when TCP ends: once the close frame is in (and answered), end TCP so the test sees it now.
        this.once('open', () => (this as unknown as Internals)._receiver?.once('conclude', () => setImmediate(() => this.terminate())));
      }
    }
    this.WebSocket = ControlledSocket as unknown as SocketClass;
  }

  get isCut(): boolean {
    return this.#cut;
  }

  /** Ends every socket's TCP connection with no close frame: each side sees 1006, the gateway starts its grace period. */
  drop(): void {
    for (const socket of this.#sockets) socket.terminate();
  }

  /** Drops the sockets and refuses new connections until `restore()`. */
  cut(): void {
    this.#cut = true;
    this.drop();
  }

  restore(): void {
    this.#cut = false;
  }

  /** Ends everything at dispose, without waiting for close handshakes. */
  dispose(): void {
    this.#cut = true;
    this.drop();
  }
}
