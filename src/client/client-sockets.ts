/**
 * The client's sockets: the current one and one kept open by reconnect(),
 * each known by the id the state machine gave it. Opening one wires its
 * events to the state machine; the liveness deadlines run for one socket at
 * a time, and a deadline that fires for a socket already replaced is ignored.
 */
import type { ConnectionEvent, SocketId } from './connection.js';
import { Liveness, type LivenessOptions } from './liveness.js';
import { closeQuietly, describeSocketError, type SocketClass, type SocketLike } from './socket.js';

export class ClientSockets {
  readonly #open = new Map<SocketId, SocketLike>();
  /** the socket the liveness deadlines are running for */
  #watched: SocketId | undefined;
  readonly #liveness: Liveness;

  constructor(
    private readonly Socket: SocketClass,
    liveness: LivenessOptions,
    private readonly dispatch: (event: ConnectionEvent) => void,
    private readonly onMessage: (socket: SocketId, data: unknown) => void,
  ) {
    this.#liveness = new Liveness(liveness, (ws, reason) => {
      const socket = this.#watched;
      if (socket !== undefined && this.#open.get(socket) === ws) dispatch({ type: 'dead', socket, reason });
    });
  }

  get(socket: SocketId): SocketLike | undefined {
    return this.#open.get(socket);
  }

  open(socket: SocketId, url: string, protocols: string[]): void {
    let ws: SocketLike;
    try {
      ws = new this.Socket(url, protocols);
    } catch (error) {
      this.dispatch({ type: 'socketUnavailable', socket, error });
      return;
    }
    this.#open.set(socket, ws);
    // A connect that hangs (a blackholed network, a handshake that never completes) counts as a dead socket.
    this.#watched = socket;
    this.#liveness.created(ws);
    let failure: string | undefined;
    ws.onopen = () => this.dispatch({ type: 'opened', socket });
    ws.onmessage = (event) => this.onMessage(socket, event.data);
    // A close event follows and decides; keep what the error says for the report (ws: the HTTP status).
    ws.onerror = (event) => void (failure = describeSocketError(event));
    ws.onclose = (event) => this.dispatch({ type: 'closed', socket, code: event.code, reason: event.reason, failure });
  }

  /** The socket opened: start its heartbeat. */
  opened(socket: SocketId): void {
    this.#liveness.opened(this.#open.get(socket)!);
  }

  /** The gateway's status arrived: the handshake deadline is met. */
  connected(): void {
    this.#liveness.connected();
  }

  /** Any frame from the current socket, pongs included. */
  signOfLife(): void {
    this.#liveness.signOfLife();
  }

  close(socket: SocketId, code: number, reason: string): void {
    const ws = this.#open.get(socket);
    this.forget(socket);
    if (ws) closeQuietly(ws, code, reason);
  }

  forget(socket: SocketId): void {
    this.retire(socket);
    this.#open.delete(socket);
  }

  /** Stops the deadlines for a socket that stays open a little longer (kept by reconnect until its successor connects). */
  retire(socket: SocketId): void {
    if (this.#watched !== socket) return;
    this.#watched = undefined;
    this.#liveness.stop();
  }
}
