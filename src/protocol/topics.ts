/**
 * What a topic with history and presence sends its clients, shared by the
 * server helpers (src/subscriptions) and the client helper (meshgate/client).
 * These travel as ordinary notifications: calls to two client handlers with
 * reserved names, which the client helper `Topics` provides.
 */

/** The client handler a publication is delivered to: `meshgatePublication(publication)`. */
export const PUBLICATION_HANDLER = 'meshgatePublication';
/** The client handler a presence change is delivered to: `meshgatePresence(event)`. */
export const PRESENCE_HANDLER = 'meshgatePresence';

/** Where a client is in a topic's history: the last offset it saw, in the topic's epoch. */
export interface TopicPosition {
  /** offsets start at 1 and grow by 1 per publication; 0: nothing published yet */
  offset: number;
  /** changes when the topic's history starts over (cleared, or its storage lost): offsets of another epoch mean nothing */
  epoch: string;
}

export interface Publication<T = unknown> extends TopicPosition {
  topic: string;
  /** when it was published (ms since epoch, the publishing object's clock) */
  at: number;
  data: T;
}

/** The answer to a subscribe with recovery. */
export interface Recovery<T = unknown> extends TopicPosition {
  topic: string;
  /**
   * true: `publications` are every one after the position the client gave, in
   * order (none if it missed nothing). false: it gave no position, another
   * epoch, or one the history no longer reaches back to: reload the state.
   */
  recovered: boolean;
  publications: Publication<T>[];
}

/** One connection (tab, process) of a member: its instance name and the metadata it set. */
export interface PresenceConnection<M = unknown> {
  instanceName: string;
  meta: M;
  /** when it joined (ms since epoch) */
  joinedAt: number;
}

/** A user present in a topic: one `sub`, with one entry per connection (duplicate tabs are one member). */
export interface PresenceMember<M = unknown> {
  sub: string;
  connections: PresenceConnection<M>[];
}

export interface PresenceSnapshot<M = unknown> {
  topic: string;
  /** oldest first */
  members: PresenceMember<M>[];
}

/**
 * A change, with the member's whole entry after it: `join` (the user's first
 * connection), `update` (a connection came, went or changed its metadata; the
 * user is still present), `leave` (the user's last connection went; no `member`).
 */
export type PresenceEvent<M = unknown> =
  | { topic: string; kind: 'join' | 'update'; sub: string; member: PresenceMember<M> }
  | { topic: string; kind: 'leave'; sub: string };
