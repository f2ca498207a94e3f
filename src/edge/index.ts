export { createMeshWorker, stripInternalHeaders, type MeshWorkerOptions } from './mesh-worker.js';
export type { CorsOptions } from './cors.js';
export { verifyAccessToken, type AuthOptions, type VerifiedToken } from './auth.js';
