/** meshgate/react — one MeshClient per tab for a React app, and hooks over it. React is a peer dependency. */
export { MeshProvider, type MeshProviderProps } from './provider.js';
export { useMeshClient, useConnectionState, useNode, useCall, useIncoming, type CallState } from './hooks.js';
export { useTopic, type UseTopicOptions, type TopicView } from './topics.js';
export { useStream, type UseStreamOptions, type StreamView } from './streams.js';
export type { ConnectionSnapshot } from './shared-client.js';
