export * from './close-codes.js';
export * from './limits.js';
export * from './errors.js';
export * from './codec.js';
export * from './frames.js';
export * from './stub.js';
export { DEFAULT_VALUE_BOUNDS, type ValueBounds } from './value-bounds.js';
export { type StandardSchemaV1 } from './standard-schema.js';
