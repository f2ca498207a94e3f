/** meshgate/client — runs in browsers, Node.js, Bun and Deno; no server code, no cloudflare:* imports. */
export { MeshClient, type ConnectionState, type MeshClientOptions } from './mesh-client.js';
export type { IncomingContext } from './incoming.js';
export type { CallOptions } from './outgoing.js';
export { ClientStream, toReadableStream } from './streams.js';
export type { SocketClass, SocketLike } from './socket.js';
export type { RefreshSource } from './token.js';
export { Backoff } from './backoff.js';
export { Topics, type TopicsOptions, type TopicOptions, type PositionStorage, type Subscribed } from './topics.js';
export * from '../protocol/topics.js';
export * from '../protocol/close-codes.js';
export * from '../protocol/errors.js';
export type { MeshStream, Remote, Stub } from '../protocol/stub.js';
export type { Origin, CallTarget } from '../protocol/frames.js';
