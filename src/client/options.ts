/** What a MeshClient is given: where to connect, how to authenticate, its handlers, limits and callbacks. */
import type { ConnectionState } from './connection.js';
import type { SocketClass } from './socket.js';
import type { RefreshSource } from './token.js';

export interface MeshClientOptions<Handlers extends object = object> {
  /** Base URL of the mesh's edge Worker, e.g. `https://app.example.com` or `ws://127.0.0.1:8787`. */
  url: string;
  /** The gateway binding to connect through (default 'GATEWAY'). */
  gateway?: string;
  /** `{sub}.{tabId}`; by default the token's sub and a tab id (per tab in browsers, random in Node). */
  instanceName?: string;
  /**
   * Where the identity comes from when the server derives it from other claims
   * than `sub` (the edge's `auth.identity`): the same function, e.g.
   * `(claims) => claims.email`. Default: the token's `sub`.
   */
  identity?: (claims: Record<string, unknown>) => unknown;
  accessToken?: string;
  /** An async function or an endpoint URL (POSTed to) returning `{ access_token }`. */
  refresh?: RefreshSource;
  /** The WebSocket class; required in Node.js 20 (`ws`). Default: the global WebSocket. */
  WebSocket?: SocketClass;
  /** Methods the mesh may call on this client. Only these are callable. */
  handlers?: Handlers;
  /** Accept incoming calls whose origin is another client (default false). */
  allowClientOrigins?: boolean;
  /** Connect on construction (default true). */
  autoConnect?: boolean;
  callTimeoutMs?: number;
  maxQueuedCalls?: number;
  reconnectMinDelayMs?: number;
  reconnectMaxDelayMs?: number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /**
   * A socket that has not received the gateway's status this long after it was created is dropped and retried (default 10 s).
   * A token refresh not settled by then counts as a failed attempt; the next attempt waits for the same refresh again.
   */
  connectTimeoutMs?: number;
  /** Calls that encode to more characters than this reject at once (default 1 MiB, the gateway's default limit). */
  maxFrameBytes?: number;
  /** Remembered incoming call ids, so a redelivered call is answered from memory. */
  rememberedCallIds?: number;
  /** Incoming calls whose handlers run at once (default 256); more are answered with LimitExceededError. */
  maxConcurrentIncomingCalls?: number;
  /** Listen to `online`, `focus` and `visibilitychange` to reconnect at once (default: true where `window` exists). */
  browserEvents?: boolean;
  fetch?: typeof fetch;
  onStateChange?: (state: ConnectionState, previous: ConnectionState) => void;
  /** The gateway has no memory of this client (first connect, or the grace period ran out): (re)subscribe here. */
  onSubscriptionRequired?: () => void | Promise<void>;
  /** The token was refused for good (4400/4403, or the refresh answered 401/403). */
  onLoginRequired?: (reason: string) => void;
  /**
   * The server speaks none of the protocol versions this client offers (close 4426, or it chose one this
   * client does not speak): the client stopped; show "reload the page to update". onError gets an UnsupportedProtocolError.
   */
  onUpdateRequired?: (reason: string) => void;
  /**
   * The protocol versions this client offers, newest first (default SUPPORTED_PROTOCOL_VERSIONS). Only tests
   * change it: to play an older or newer client against a gateway.
   */
  protocolVersions?: readonly number[];
  /** Another process took over this identity; this client stopped and will not reconnect by itself. */
  onSuperseded?: () => void;
  /**
   * Every time the gateway accepted a socket (before onSubscriptionRequired).
   * `firstConnection` is true for this client object's first connection: with
   * `subscriptionRequired: false` there, a new page reused an identity the
   * gateway still remembers (a reload) — the app's own state is fresh, the
   * server's subscriptions are not.
   */
  onConnected?: (info: { subscriptionRequired: boolean; firstConnection: boolean }) => void;
  /** Errors with nowhere else to go (a throwing callback or handler). */
  onError?: (error: unknown) => void;
}
