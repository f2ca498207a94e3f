export { Subscriptions, type SubscriptionsOptions, type FanOutOptions, type MethodName } from './subscriptions.js';
export { SubscriptionStore, type Subscriber } from './store.js';
export type { FanOutSummary, SubscriberOutcome } from './fan-out.js';
