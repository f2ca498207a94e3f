/** meshgate/react — one MeshClient per tab for a React app, and hooks over it. React is a peer dependency. */
export { MeshProvider, type MeshProviderProps } from './provider.js';
export { useMeshClient, useConnectionState, useNode, useCall, useIncoming, type CallState } from './hooks.js';
export type { ConnectionSnapshot } from './shared-client.js';
