/** Mesh nodes (the application's Durable Objects and Workers): base classes, @mesh, the call context. */
export { MeshDurableObject, MeshWorker } from './base.js';
export { mesh } from './exposed.js';
export { getCallContext } from './context.js';
export { MeshApi, type ClientCallOptions, type ClientResultSchemas, type NotifyReceipt } from './mesh-api.js';
export type { CallContext, OriginAuth } from './envelope.js';
export type { Guard, MeshMethodOptions, SchemaOutputs } from './checks.js';
