export { createMeshWorker, stripInternalHeaders, type MeshWorkerOptions } from './mesh-worker.js';
export { verifyAccessToken, type AuthOptions, type VerifiedToken } from './auth.js';
