/** The gateway's sockets: what each one carries, which one is open, and sending or closing on one that may already be gone. */
import { WS_CLOSE_NORMAL } from '../protocol/close-codes.js';
import { encodeFrame, MAX_BATCH_FRAMES } from '../protocol/frames.js';
import type { VerifiedIdentity } from '../upgrade/identity.js';
import { closeReason } from '../upgrade/responses.js';
import type { SocketView } from './supersession.js';
import type { DepartureWatcher } from './departures.js';

export const OPEN = 1;

export interface SocketInfo extends VerifiedIdentity {
  /** the gateway closed this socket itself (superseded, refused): its close event decides nothing */
  closedByGateway?: true;
  /** the protocol version the edge negotiated: frames on this socket follow it */
  protocol: number;
  /** nodes to tell when this client is gone for good (departures.ts) */
  departures?: DepartureWatcher[];
}

export function tokenExpired(info: SocketInfo, now = Date.now()): boolean {
  return info.exp !== undefined && now >= info.exp * 1000;
}

/** Answers held for a socket until the next timer turn, at most one batch's worth; `release` tells their GatewaySockets they are gone. */
interface Held {
  texts: string[];
  chars: number;
  maxChars: number;
  release(ws: WebSocket): void;
}

/** Answers held for the next timer turn (GatewaySockets.sendSoon), by socket: anything else sent on it first sends these, so order holds. */
const held = new WeakMap<WebSocket, Held>();

function sendHeld(ws: WebSocket): void {
  const pending = held.get(ws);
  if (!pending) return;
  held.delete(ws);
  pending.release(ws);
  sendBatched(ws, pending.texts, pending.maxChars);
}

export function safeSend(ws: WebSocket, text: string): boolean {
  sendHeld(ws);
  try {
    ws.send(text);
    return true;
  } catch {
    return false; // the socket closed under us; the resend rules cover what was lost
  }
}

export function safeClose(ws: WebSocket, code: number, reason: string): void {
  sendHeld(ws);
  try {
    ws.close(code, closeReason(reason));
  } catch {
    // already closed
  }
}

/** An `error` frame: a problem with one frame that does not end the connection. */
export function sendError(ws: WebSocket, code: string, message: string, id?: string): void {
  safeSend(ws, encodeFrame({ type: 'error', code, message, ...(id === undefined ? {} : { id }) }));
}

/**
 * Sends frames that are ready at the same moment as batches (JSON arrays of
 * at most MAX_BATCH_FRAMES frames and `maxChars` characters).
 */
function sendBatched(ws: WebSocket, texts: readonly string[], maxChars: number): void {
  let batch: string[] = [];
  let chars = 0;
  const flush = (): void => {
    if (batch.length === 1) safeSend(ws, batch[0]!);
    else if (batch.length > 1) safeSend(ws, `[${batch.join(',')}]`);
    batch = [];
    chars = 0;
  };
  for (const text of texts) {
    // `chars` counts each text and a separator; the batch adds one more for its brackets
    if (batch.length > 0 && (batch.length >= MAX_BATCH_FRAMES || chars + text.length + 2 > maxChars)) flush();
    batch.push(text);
    chars += text.length + 1;
  }
  flush();
}

/** A close code we may send back: 1000 or an application code; anything else echoes as 1000. */
export function echoableCode(code: number): number {
  return code === WS_CLOSE_NORMAL || (code >= 3000 && code <= 4999) ? code : WS_CLOSE_NORMAL;
}

/**
 * The sockets of one gateway, as the runtime keeps them (`ctx.getWebSockets()`
 * and each socket's attachment, which survive hibernation), with an in-memory
 * cache of both.
 */
export class GatewaySockets {
  readonly #ctx: DurableObjectState;
  readonly #info = new WeakMap<WebSocket, SocketInfo>();
  /** The socket last seen open: saves a getWebSockets() scan per frame; re-checked on every use, rebuilt after hibernation. */
  #current: WebSocket | undefined;

  constructor(ctx: DurableObjectState) {
    this.#ctx = ctx;
  }

  /** Sockets whose client sent a batch, so reads them: answers that are ready together go to it as one (together, sendSoon). In memory only: after hibernation a client is sent single frames until it batches again. */
  readonly #batching = new WeakSet<WebSocket>();

  takesBatches(ws: WebSocket): void {
    this.#batching.add(ws);
  }

  /** frames being gathered by `together`, by socket, or undefined: each goes at once */
  #gathered: Map<WebSocket, string[]> | undefined;

  /**
   * Runs `produce`; the frames it sends with `send` go out when it returns,
   * each socket's together (sendBatched): the results of one burst that
   * arrive in one delivery reach a client that reads batches as one message.
   */
  together(produce: () => void, maxChars: number): void {
    const outer = this.#gathered;
    const gathered = (this.#gathered = outer ?? new Map());
    try {
      produce();
    } finally {
      if (!outer) {
        this.#gathered = undefined;
        for (const [ws, texts] of gathered) {
          if (texts.length === 1 || !this.#batching.has(ws)) for (const text of texts) safeSend(ws, text);
          else sendBatched(ws, texts, maxChars);
        }
      }
    }
  }

  /** sockets with frames held by sendSoon; one timer sends them all, and is cleared once none is held */
  readonly #holding = new Set<WebSocket>();
  #holdTimer: ReturnType<typeof setTimeout> | undefined;

  readonly #release = (ws: WebSocket): void => {
    this.#holding.delete(ws);
    if (this.#holding.size === 0 && this.#holdTimer !== undefined) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = undefined;
    }
  };

  /**
   * Sends `text` on `ws` on the next timer turn, in one batch with whatever
   * else is held for it by then, if the socket takes batches (else at once).
   * For answers that arrive one per turn while other calls run: one message
   * for many costs the runtime less than one each (bench: throughput). At
   * most one batch is held per socket: a full one goes at once.
   */
  sendSoon(ws: WebSocket, text: string, maxChars: number): void {
    if (this.#gathered || !this.#batching.has(ws)) {
      this.send(ws, text);
      return;
    }
    let pending = held.get(ws);
    if (!pending) {
      pending = { texts: [], chars: 0, maxChars, release: this.#release };
      held.set(ws, pending);
      this.#holding.add(ws);
    }
    pending.texts.push(text);
    pending.chars += text.length + 1;
    if (pending.texts.length >= MAX_BATCH_FRAMES || pending.chars + 1 >= maxChars) {
      sendHeld(ws);
      return;
    }
    this.#holdTimer ??= setTimeout(() => {
      this.#holdTimer = undefined;
      for (const socket of [...this.#holding]) sendHeld(socket);
    }, 0);
  }

  /** Sends `text` on `ws`, or with the frames a running `together` gathers. */
  send(ws: WebSocket, text: string): void {
    const gathered = this.#gathered;
    if (!gathered) {
      safeSend(ws, text);
      return;
    }
    const texts = gathered.get(ws);
    if (texts) texts.push(text);
    else gathered.set(ws, [text]);
  }

  /** Every socket the runtime still lists, as supersession.ts sees it. */
  views(): SocketView<WebSocket>[] {
    return this.#ctx.getWebSockets().map((socket) => ({ socket, open: this.isOpen(socket) }));
  }

  /** Accepts `ws` as the client's socket (the caller has superseded the others). */
  accept(ws: WebSocket, info: SocketInfo): void {
    this.#ctx.acceptWebSocket(ws);
    this.#current = ws;
    ws.serializeAttachment(info);
    this.#info.set(ws, info);
  }

  /** Replaces what `ws` carries; false (nothing changed) if it does not fit an attachment. */
  update(ws: WebSocket, info: SocketInfo): boolean {
    try {
      ws.serializeAttachment(info);
    } catch {
      return false;
    }
    this.#info.set(ws, info);
    return true;
  }

  /** The open socket, if any; a closing one never counts (it may linger in getWebSockets()). */
  active(except?: WebSocket): WebSocket | undefined {
    const current = this.#current;
    if (current !== undefined && current !== except && this.isOpen(current)) return current;
    return (this.#current = this.#ctx.getWebSockets().find((ws) => ws !== except && this.isOpen(ws)));
  }

  /** The socket a call came on, if still open (it is then the only open one); else whichever is open now. */
  replyTo(ws: WebSocket): WebSocket | undefined {
    return this.isOpen(ws) ? ws : this.active();
  }

  /** Open and not closed by the gateway: after hibernation workerd reports a socket it closed, still unanswered, as OPEN again. */
  isOpen(ws: WebSocket): boolean {
    return ws.readyState === OPEN && !this.info(ws)?.closedByGateway;
  }

  info(ws: WebSocket): SocketInfo | undefined {
    let info = this.#info.get(ws);
    if (!info) {
      info = (ws.deserializeAttachment() ?? undefined) as SocketInfo | undefined;
      if (info) this.#info.set(ws, info);
    }
    return info;
  }

  /**
   * Closes a socket from the gateway's side and marks it, so its close event —
   * which can come tens of seconds later — never starts a grace period again.
   * A superseded socket is told in band first: its close event can lag.
   */
  close(ws: WebSocket, code: number, reason: string, superseded = false): void {
    if (superseded && this.isOpen(ws)) safeSend(ws, encodeFrame({ type: 'superseded', reason }));
    const info = this.info(ws);
    if (info && !info.closedByGateway) {
      const closed: SocketInfo = { ...info, closedByGateway: true };
      try {
        ws.serializeAttachment(closed);
      } catch {
        // a socket already closed takes no attachment; the in-memory mark still holds
      }
      this.#info.set(ws, closed);
    }
    safeClose(ws, code, reason);
  }
}
