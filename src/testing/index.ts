/**
 * meshgate/testing — an application's own tests on real workerd (Node.js, Miniflare).
 * Needs miniflare, esbuild and ws installed (wrangler brings the first two).
 */
export { startTestMesh, TestMesh, TEST_SECRET, type TestMeshOptions, type TestClientOptions, type GatewayTarget, type NetworkCut } from './test-mesh.js';
export type { GatewaySnapshot } from './gateway-controls.js';
export { waitFor } from './wait.js';
