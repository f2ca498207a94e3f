/**
 * Frames from the client, checked before anything acts on them: the socket's
 * rate limit, text only, the size limit, then the decoder. What comes out is
 * a frame to act on or what to do instead.
 */
import { WS_CLOSE_RATE_LIMITED, WS_CLOSE_TOO_LARGE } from '../protocol/close-codes.js';
import { readClientMessage } from '../protocol/client-messages.js';
import { checkClientFrame, type ClientFrame, type FrameError } from '../protocol/frames.js';
import type { GatewayConfig } from './config.js';
import { byteBurstOf, TokenBuckets } from './frame-rate.js';
import { sendError } from './sockets.js';

export type FrameRead =
  | { kind: 'frame'; frame: ClientFrame }
  /** close the socket with this code (the gateway's refusal: it starts the grace period) */
  | { kind: 'close'; code: number; reason: string }
  /** a malformed `call` whose id could be read: answered with `error`, never run */
  | { kind: 'refusedCall'; id: string; error: FrameError }
  /** already answered with an `error` frame */
  | { kind: 'answered' };

type IntakeConfig = Pick<GatewayConfig, 'framesPerSecond' | 'frameBurst' | 'bytesPerSecond' | 'byteBurst' | 'maxFrameBytes' | 'maxCallIdLength'>;

export class FrameIntake {
  /** frames this client may still send (config.framesPerSecond, config.frameBurst) */
  readonly #frames = new TokenBuckets();
  /** characters of frames it may still send (config.bytesPerSecond, config.byteBurst): without them, a thousand 1 MB frames a second would all reach the mesh */
  readonly #bytes = new TokenBuckets();
  /** One bucket of each for the identity, not per socket: a reconnect must not bring a fresh burst. */
  readonly #client = {};

  /**
   * The frames of one message, in order: one, or each of a batch (a JSON
   * array of frames, docs/protocol.md §2), every one checked and counted
   * against the rate on its own. Reading stops at a `close`.
   */
  read(ws: WebSocket, message: string | ArrayBuffer, config: IntakeConfig): FrameRead[] & { batch?: true } {
    // Past its burst: acting on more (or answering each with an error) would let one socket
    // take the gateway's time and make the runtime buffer output for a client that may not read.
    if (!this.#frames.take(this.#client, config.framesPerSecond, config.frameBurst)) return [rateLimited(config)];
    // A string's length (UTF-16 code units) is checked, not its UTF-8 size: it costs nothing to read and never exceeds it.
    const size = typeof message === 'string' ? message.length : message.byteLength;
    if (size > config.maxFrameBytes) return [{ kind: 'close', code: WS_CLOSE_TOO_LARGE, reason: `Frame too large (limit ${config.maxFrameBytes})` }];
    // Counted before anything reads it: what the bucket bounds is what the gateway and the nodes behind it spend on this client.
    if (!this.#bytes.take(this.#client, config.bytesPerSecond, byteBurstOf(config), size)) return [byteRateLimited(config)];
    if (typeof message !== 'string') {
      sendError(ws, 'binary_not_supported', 'Binary frames are not part of protocol v1; send JSON text frames.');
      return [{ kind: 'answered' }];
    }
    let parsed: { values: unknown[]; batch: boolean };
    try {
      parsed = readClientMessage(message);
    } catch (error) {
      const problem = error as FrameError;
      sendError(ws, problem.code, problem.message);
      return [{ kind: 'answered' }];
    }
    const { values, batch } = parsed;
    const reads: FrameRead[] & { batch?: true } = [this.#check(ws, values[0], config)];
    if (batch) reads.batch = true;
    // Each frame of a batch after the first takes a token of its own: a batch is no way around the rate.
    for (let i = 1; i < values.length; i++) {
      if (!this.#frames.take(this.#client, config.framesPerSecond, config.frameBurst)) {
        reads.push(rateLimited(config));
        break;
      }
      reads.push(this.#check(ws, values[i], config));
    }
    return reads;
  }

  #check(ws: WebSocket, value: unknown, config: IntakeConfig): FrameRead {
    try {
      return { kind: 'frame', frame: checkClientFrame(value, config.maxCallIdLength) };
    } catch (error) {
      const problem = error as FrameError;
      if (problem.callId !== undefined && problem.frameType === 'call') return { kind: 'refusedCall', id: problem.callId, error: problem };
      sendError(ws, problem.code, problem.message, problem.callId);
      return { kind: 'answered' };
    }
  }
}

function rateLimited(config: IntakeConfig): FrameRead {
  return { kind: 'close', code: WS_CLOSE_RATE_LIMITED, reason: `Rate limit exceeded (${config.framesPerSecond} frames/s, bursts of ${config.frameBurst}): send fewer frames` };
}

function byteRateLimited(config: IntakeConfig): FrameRead {
  return { kind: 'close', code: WS_CLOSE_RATE_LIMITED, reason: `Byte rate exceeded (${config.bytesPerSecond} chars/s, bursts of ${byteBurstOf(config)}): send less data` };
}
