import { MAX_STATE_DEPTH } from './wire.js';

/**
 * Tuning defaults: every one is configurable where it is used. Values fixed by
 * the protocol itself (heartbeat strings, subprotocol, version, burst part size)
 * are in wire.ts.
 */
export const DEFAULTS = {
  gracePeriodMs: 5_000,
  clientResponseTimeoutMs: 30_000,
  callTimeoutMs: 30_000,
  /** the gateway's own deadline for a call into the mesh: past the client's, so the client's timeout speaks first */
  gatewayCallDeadlineMs: 60_000,
  reconnectMinDelayMs: 1_000,
  reconnectMaxDelayMs: 30_000,
  heartbeatIntervalMs: 30_000,
  heartbeatTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxQueuedCalls: 100,
  /** counted in UTF-16 code units (the frame string's length), not UTF-8 bytes: see GatewayConfig.maxFrameBytes */
  maxFrameBytes: 1024 * 1024,
  maxInFlightCalls: 256,
  maxPendingClientCalls: 256,
  /** mesh → client notifications (sent, not awaited) a gateway keeps until the client answers them */
  maxPendingNotifications: 256,
  /** total UTF-8 size of those notifications' frames */
  maxPendingNotificationBytes: 1024 * 1024,
  rememberedCallIds: 1_000,
  /** total UTF-8 bytes of the remembered answers a gateway keeps */
  rememberedAnswerBytes: 4 * 1024 * 1024,
  /** frames per second one client identity may send, sustained (a token bucket) */
  framesPerSecond: 1_000,
  /** frames one client identity may send at once above that rate */
  frameBurst: 5_000,
  /** characters (UTF-16 code units, as maxFrameBytes) of frames one client identity may send per second, sustained */
  bytesPerSecond: 4 * 1024 * 1024,
  /** characters it may send at once above that rate (a gateway applies at least twice maxFrameBytes) */
  byteBurst: 16 * 1024 * 1024,
  maxCallIdLength: 128,
  /** @deprecated fixed by the protocol, not tunable: use MAX_STATE_DEPTH */
  maxStateDepth: MAX_STATE_DEPTH,
  /** RPC stubs a gateway keeps for reuse */
  maxCachedStubs: 64,
  /** incoming (mesh → client) calls a client runs at once */
  maxConcurrentIncomingCalls: 256,
  /** streams (results that arrive in chunks) one client identity has open at once, at its gateway */
  maxStreams: 16,
  /** chunks a client lets a stream send ahead of what it has read (its window; the call frame's streamWindow) */
  streamWindow: 32,
  /** the largest window a gateway accepts from a client */
  maxStreamWindow: 256,
  /** one chunk's codec string, in UTF-16 code units */
  maxStreamChunkBytes: 64 * 1024,
  /** chunks a gateway holds per stream (pulled, not yet acknowledged by the client), in UTF-16 code units */
  maxStreamBufferBytes: 1024 * 1024,
  /** how long a stream may make no progress (no credit from its reader, no chunk from its producer) before the gateway ends it */
  streamIdleMs: 5 * 60_000,
} as const;

/** A usable timeout or deadline: a positive, finite number of milliseconds (a NaN from `Number(env.X)` is not). */
export function isDurationMs(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

/** The gateway binding clients connect through unless told otherwise (edge, gateway, client and nodes agree on it). */
export const DEFAULT_GATEWAY_BINDING = 'GATEWAY';

export { HEARTBEAT_PING, HEARTBEAT_PONG, MAX_BURST_PART_SIZE, MAX_STATE_DEPTH, PROTOCOL_VERSION, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from './wire.js';
