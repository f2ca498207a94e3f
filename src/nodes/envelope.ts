/**
 * What travels over Workers RPC between mesh parts (gateway → node, node →
 * node, node → gateway). Payloads stay codec strings, so a call from a client
 * is never decoded and re-encoded on its way through the gateway.
 */
import type { CallTarget, Origin } from '../protocol/frames.js';

/** Identity proven by the access token of the client that started the chain. */
export interface OriginAuth {
  sub: string;
  claims: Record<string, unknown>;
}

/** What a handler knows about the call it is serving. */
export interface CallContext {
  /** the original caller of the chain */
  origin: Origin;
  /** the immediate caller */
  caller: Origin;
  /** every hop, origin first, immediate caller last */
  chain: Origin[];
  /** set when the chain started at a client; only ever from the verified token */
  originAuth?: OriginAuth;
  /** application state carried along the chain */
  state: Record<string, unknown>;
}

export interface MeshEnvelope {
  target: CallTarget;
  method: string;
  /** codec string of the argument array */
  args: string;
  context: CallContext;
  /**
   * The caller stops waiting after this many milliseconds (the gateway's call
   * deadline). The node answers by then even if the method still runs:
   * workerd cannot cancel a pending RPC, so a method that never ends would
   * keep the caller in memory too.
   */
  deadlineMs?: number;
  /** The caller may cancel: `wait()` resolves true when it does, false when the call ended first (see nodes/signals.ts). */
  cancel?: CancelWatch;
}

/** The gateway's side of a cancellable call, passed to the node over RPC. */
export interface CancelWatch {
  wait(): Promise<boolean>;
}

/** What a gateway asks of a stream: produce up to chunk number `limit` (absolute), hold at most `maxChars`, refuse a chunk over `maxChunkChars`. */
export interface StreamPull {
  limit: number;
  maxChars: number;
  maxChunkChars: number;
}

/** Chunks ready (codec strings, in order), and whether the stream ended (`end`) or failed (`error`, a codec string) after them. */
export interface StreamBatch {
  chunks: string[];
  end?: true;
  error?: string;
}

/** A stream result, as an RPC stub of the node's NodeStream (nodes/streams.ts). */
export interface StreamSource {
  /** Resolves once at least one chunk is ready, or the stream is over. */
  next(pull: StreamPull): Promise<StreamBatch>;
  /** Stops the producer (its `finally` runs) and aborts the call's signal. */
  cancel(): Promise<void>;
}

export interface ClientCallEnvelope {
  instanceName: string;
  method: string;
  args: string;
  context: CallContext;
  timeoutMs?: number;
}

/**
 * The answer to an envelope: a codec string of the result, or of the error.
 * A result that is a stream has `stream` (and an empty `result`).
 * `acceptsBursts` tells the gateway this Durable Object takes calls that
 * arrive together in one RPC (see MeshDurableObject.acceptsCallBursts).
 */
export type MeshResult = ({ ok: true; result: string; stream?: StreamSource } | { ok: false; error: string }) & { acceptsBursts?: true };

/**
 * The gateway's answer to a notification (a call to the client nobody waits
 * for): handed to the open socket, or `queued` for a client in its grace
 * period; or why not (`ClientDisconnectedError`: gone; `ClientTimeoutError`:
 * it left an earlier notification unanswered past the timeout).
 */
export type NotifyResult = { ok: true; queued: boolean } | { ok: false; error: string };
