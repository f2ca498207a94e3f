export { IdentityLimiter, type Admission, type IdentityLimiterConfig } from './limiter.js';
export { DEFAULT_IDENTITY_LIMITER_BINDING, DEFAULT_MAX_IDENTITIES_PER_SUB, type IdentityLimitOptions } from './admission.js';
