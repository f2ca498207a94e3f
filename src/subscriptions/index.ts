export {
  Subscriptions, DEFAULT_MAX_CONSECUTIVE_TIMEOUTS, DEFAULT_MAX_SUBSCRIPTIONS_PER_SUB, MAX_TOPIC_LENGTH,
  type SubscriptionsOptions, type FanOutOptions, type MethodName, type PublishSummary,
} from './subscriptions.js';
export { SubscriptionStore, type Subscriber } from './store.js';
export type { FanOutSummary, SubscriberOutcome, NotifySummary, NotifyOutcome } from './fan-out.js';
export { TopicHistory, HISTORY_DEFAULTS, HISTORY_CAPS, type HistoryOptions } from './history.js';
export * from '../protocol/topics.js';
export { Presence, PRESENCE_DEFAULTS, PRESENCE_CAPS, type PresenceOptions, type VersionedSnapshot } from './presence.js';
export { FanOutRelay, type RelayJob, type RelayedAnswer } from './relay.js';
export { FanOutRelayError } from './relay-answers.js';
export { RELAY_DEFAULTS, RELAY_CAPS, RELAYED_ANSWER_CHARS, type RelayOptions } from './relays.js';
