/** The test mesh with streaming nodes (test/fixtures/streams-worker.ts), and the setup the stream suites share. */
import { afterAll, beforeAll } from 'vitest';
import { MeshClient, type MeshClientOptions } from '../../src/client/index.js';
import { startTestMesh, waitFor, type TestMesh } from './mesh.js';
import { createNetwork } from './network.js';

/** For startTestMesh. */
export const STREAM_MESH = {
  entry: new URL('../fixtures/streams-worker.ts', import.meta.url),
  durableObjects: { GATEWAY: 'StreamGateway', STREAMS: 'StreamDO' },
  services: { STREAM_WORKER: 'StreamWorker' },
};

/** One stream mesh for a test file (`options` over STREAM_MESH), and connected clients that are disconnected after it. */
export function useStreamMesh(options: Omit<Parameters<typeof startTestMesh>[0] & object, 'entry'> = {}): {
  readonly mesh: TestMesh;
  connected(sub: string, extra?: Partial<MeshClientOptions>): Promise<MeshClient>;
} {
  let mesh: TestMesh | undefined;
  const clients: MeshClient[] = [];
  beforeAll(async () => {
    mesh = await startTestMesh({ ...STREAM_MESH, ...options });
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await mesh?.dispose();
  });
  const started = (): TestMesh => {
    if (!mesh) throw new Error('the stream mesh is not started yet (use it inside a test)');
    return mesh;
  };
  return {
    get mesh() {
      return started();
    },
    async connected(sub, extra = {}) {
      const m = started();
      const client = new MeshClient({ url: m.url.origin, accessToken: await m.token(sub), WebSocket: createNetwork().WebSocket, ...extra });
      clients.push(client);
      await waitFor(() => client.state === 'connected', `${sub} to connect`);
      return client;
    },
  };
}
