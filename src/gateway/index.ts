export { ClientGateway, type CallToClient, type CallToMesh } from './client-gateway.js';
export { defaultGatewayConfig, type GatewayConfig } from './config.js';
export type { VerifiedIdentity } from '../upgrade/identity.js';
