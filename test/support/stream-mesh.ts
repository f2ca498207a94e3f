/** The test mesh with streaming nodes (test/fixtures/streams-worker.ts), for startTestMesh. */
export const STREAM_MESH = {
  entry: new URL('../fixtures/streams-worker.ts', import.meta.url),
  durableObjects: { GATEWAY: 'StreamGateway', STREAMS: 'StreamDO' },
  services: { STREAM_WORKER: 'StreamWorker' },
};
