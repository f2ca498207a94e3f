export { ClientGateway } from './client-gateway.js';
export type { CallToMesh } from './calls-to-mesh.js';
export type { CallToClient } from './calls-to-client.js';
export { defaultGatewayConfig, type GatewayConfig } from './config.js';
export type { VerifiedIdentity } from '../upgrade/identity.js';
