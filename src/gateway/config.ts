import { DEFAULTS, DEFAULT_GATEWAY_BINDING, isDurationMs } from '../protocol/limits.js';
import { DEFAULT_IDENTITY_LIMITER_BINDING } from '../identities/admission.js';

export interface GatewayConfig {
  /** how long a disconnected client's gateway waits for a reconnect before calls to it fail */
  gracePeriodMs: number;
  /** how long a mesh → client call waits for the client's answer */
  clientResponseTimeoutMs: number;
  /**
   * Frames longer than this close the socket with 1009. Counted in UTF-16 code
   * units (the frame string's `length`), not UTF-8 bytes: a frame within it
   * may take up to 3× as many bytes (a binary frame counts its bytes). The name is the wire's (`connection_status`).
   */
  maxFrameBytes: number;
  /** client → mesh calls running at once per client; more are refused */
  maxInFlightCalls: number;
  /** mesh → client calls waiting for an answer at once; more are refused */
  maxPendingClientCalls: number;
  /** notifications (mesh → client calls nobody awaits) kept until the client answers, to follow it to a new socket; more are refused */
  maxPendingNotifications: number;
  /** total UTF-8 bytes of those notifications' frames */
  maxPendingNotificationBytes: number;
  /** answered call ids remembered so a resent call is answered, not run again */
  rememberedCallIds: number;
  /** total UTF-8 bytes of those remembered answers; the oldest are forgotten first (the newest is always kept) */
  rememberedAnswerBytes: number;
  /** frames per second one client identity may send over all its sockets, sustained; a socket past the burst is closed with 1008 */
  framesPerSecond: number;
  /** frames one client identity may send at once above the sustained rate */
  frameBurst: number;
  /**
   * Characters of frames (UTF-16 code units, as maxFrameBytes) one client
   * identity may send per second over all its sockets, sustained; a socket
   * past the burst is closed with 1008. It bounds what one client makes the
   * gateway and the nodes it calls parse and decode.
   */
  bytesPerSecond: number;
  /** characters one client identity may send at once above the sustained rate; at least twice maxFrameBytes is applied */
  byteBurst: number;
  /** a client → mesh call the node has not answered after this long is given up (OutcomeUnknownError) and its slot freed */
  callDeadlineMs: number;
  /**
   * How long calls that arrive while others run are gathered before they go
   * out together (0: until the next timer turn). A longer window makes
   * larger bursts for clients with many calls in flight, at that much latency.
   */
  burstWindowMs: number;
  maxCallIdLength: number;
  /** RPC stubs kept for reuse, least recently created dropped first */
  maxCachedStubs: number;
  /** bindings clients may call; undefined = any non-gateway DO or Worker binding that is a mesh node */
  nodeBindings?: readonly string[];
  /** gateway bindings: never callable from a client */
  gatewayBindings: readonly string[];
  /** keys of the call state only the server may set; a client's values for them are dropped */
  reservedStateKeys: readonly string[];
  /**
   * Sockets this gateway closed whose client never answered the close, kept
   * by workerd until their TCP connection ends: at this many, a new upgrade
   * is refused with 4429 (each costs about 385 KB of workerd memory).
   */
  maxClosingSockets: number;
  /** streams (call results that arrive in chunks) open at once, ended ones the client has not released included; a stream past it is cancelled and its call answered with LimitExceededError */
  maxStreams: number;
  /** the most chunks a client may let one stream send ahead of what it has read (larger credit is cut to this) */
  maxStreamWindow: number;
  /** one chunk's codec string, in UTF-16 code units: a larger chunk fails the stream with LimitExceededError and stops its producer */
  maxStreamChunkBytes: number;
  /** chunks held per stream (pulled from the node, not yet acknowledged by the client), in UTF-16 code units */
  maxStreamBufferBytes: number;
  /**
   * A stream with no progress this long (no credit from the client, no chunk or end from the producer) ends with
   * LimitExceededError and its producer is stopped, so a stream nobody reads does not keep the gateway and node in memory
   */
  streamIdleMs: number;
  /** the IdentityLimiter binding told when this gateway's identity ends (absent from env: nothing is told) */
  identityLimiterBinding: string;
}

/** A duration from the config, checked where it is used: a NaN from `Number(env.X)` must fail loudly, not wait forever. */
export function configuredMs(name: keyof GatewayConfig, value: unknown): number {
  if (isDurationMs(value)) return value;
  throw new RangeError(`Gateway misconfigured: config.${name} must be a positive number of milliseconds, got ${String(value)}.`);
}

/** The least each rate, burst and size may be: a burst below 1 never holds a frame's token, a frame limit below 256 refuses a plain call. */
const RATE_MINIMUMS = { framesPerSecond: 1, frameBurst: 1, bytesPerSecond: 1, byteBurst: 1, maxFrameBytes: 256 } as const;

/**
 * The rates and sizes a socket is paced by, checked before one is accepted: a
 * NaN would refuse every frame, 0 or a fraction of a burst every frame past
 * the first burst (while the client, told 0, would not pace at all), and
 * Infinity would lift the limit and reach the client as null. Up to 2^53, so
 * twice maxFrameBytes stays exact. The reason names the first field out of
 * range and fits a close reason (123 bytes).
 */
export function misconfiguredRate(config: Pick<GatewayConfig, keyof typeof RATE_MINIMUMS>): string | undefined {
  for (const [name, min] of Object.entries(RATE_MINIMUMS) as Array<[keyof typeof RATE_MINIMUMS, number]>) {
    const value = config[name];
    if (typeof value === 'number' && value >= min && value <= Number.MAX_SAFE_INTEGER) continue;
    const lift = name === 'maxFrameBytes' ? '' : '; 1e12 lifts it';
    return `Gateway misconfigured: config.${name} must be a number from ${min} to 2^53, got ${String(value).slice(0, 24)}${lift}`;
  }
  return undefined;
}

export function defaultGatewayConfig(): GatewayConfig {
  return {
    gracePeriodMs: DEFAULTS.gracePeriodMs,
    clientResponseTimeoutMs: DEFAULTS.clientResponseTimeoutMs,
    maxFrameBytes: DEFAULTS.maxFrameBytes,
    maxInFlightCalls: DEFAULTS.maxInFlightCalls,
    maxPendingClientCalls: DEFAULTS.maxPendingClientCalls,
    maxPendingNotifications: DEFAULTS.maxPendingNotifications,
    maxPendingNotificationBytes: DEFAULTS.maxPendingNotificationBytes,
    rememberedCallIds: DEFAULTS.rememberedCallIds,
    rememberedAnswerBytes: DEFAULTS.rememberedAnswerBytes,
    framesPerSecond: DEFAULTS.framesPerSecond,
    frameBurst: DEFAULTS.frameBurst,
    bytesPerSecond: DEFAULTS.bytesPerSecond,
    byteBurst: DEFAULTS.byteBurst,
    callDeadlineMs: DEFAULTS.gatewayCallDeadlineMs,
    burstWindowMs: 0,
    maxCallIdLength: DEFAULTS.maxCallIdLength,
    maxCachedStubs: DEFAULTS.maxCachedStubs,
    gatewayBindings: [DEFAULT_GATEWAY_BINDING],
    reservedStateKeys: [],
    maxClosingSockets: 64,
    identityLimiterBinding: DEFAULT_IDENTITY_LIMITER_BINDING,
    maxStreams: DEFAULTS.maxStreams,
    maxStreamWindow: DEFAULTS.maxStreamWindow,
    maxStreamChunkBytes: DEFAULTS.maxStreamChunkBytes,
    maxStreamBufferBytes: DEFAULTS.maxStreamBufferBytes,
    streamIdleMs: DEFAULTS.streamIdleMs,
  };
}
