/** meshgate — server side: edge Worker, client gateway, mesh node base classes. */
export * from './nodes/index.js';
export * from './gateway/index.js';
export * from './edge/index.js';
export * from './protocol/index.js';
export * from './subscriptions/index.js';
export * from './identities/index.js';
