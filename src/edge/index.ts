export { createMeshWorker, stripInternalHeaders, type MeshWorkerOptions } from './mesh-worker.js';
export type { CorsOptions } from './cors.js';
export { verifyAccessToken, type AuthOptions, type VerifiedToken } from './auth.js';
export { consoleEdgeLogger, describeRefusal, type EdgeLogger, type RefusedUpgrade } from './refusals.js';
