/**
 * The contract between the chat room (a Durable Object) and its clients,
 * shared by the Worker, the browser page and the Node client. Types only:
 * importing this pulls no code into either bundle.
 */

export interface ChatMessage {
  /** increasing per room; clients order by it (concurrent fan-outs may arrive out of order) */
  id: number;
  from: string;
  text: string;
  at: number;
}

import type { PresenceMember, Recovery, TopicPosition } from 'meshgate/client';

/** One user in the room, with how many tabs/processes of theirs are here, and whether one of them is typing. */
export interface PresenceEntry {
  sub: string;
  connections: number;
  typing?: boolean;
}

/** What each tab tells the others through presence. */
export interface Typing {
  typing: boolean;
}

export interface RoomSnapshot {
  room: string;
  /** whether the calling client is subscribed to this room */
  subscribed: boolean;
  messages: ChatMessage[];
  presence: PresenceEntry[];
  counter: number;
  /** who changed the counter last, where the room keeps it */
  counterBy?: string;
}

/** What a send or an increment reports back: how the fan-out went (the room does not wait for the tabs to answer). */
export interface Delivery {
  total: number;
  /** handed to the subscriber's connection, or held by its gateway for a reconnect inside the grace period */
  delivered: number;
  dropped: number;
  timedOut: number;
  failed: number;
}

/** What join answers: the room, what this tab missed since the position it gave, and who is here (with a version). */
export interface JoinedRoom extends RoomSnapshot {
  recovery: Recovery<ChatMessage>;
  members: { topic: string; members: PresenceMember<Typing>[]; version: number };
}

/** Methods of the room a client may call (the room's @mesh methods). */
export interface RoomApi {
  /** Subscribes the caller (recovering what it missed since `since`), makes it present, and returns the room as it is now. */
  join(since?: TopicPosition, typing?: boolean): JoinedRoom;
  /** This tab is typing, or stopped. */
  typing(typing: boolean): void;
  /** The room as it is now, without subscribing (a page reloaded inside the grace period is still subscribed). */
  snapshot(): RoomSnapshot;
  leave(): void;
  /** A string of 1 to MAX_MESSAGE_LENGTH characters (trimmed); anything else is refused. */
  send(text: string): { message: ChatMessage; delivery: Delivery };
  /** A whole number from -100 to 100 other than 0 (default 1). */
  increment(by?: number): { counter: number; delivery: Delivery };
}

/**
 * Methods the room calls on every subscribed client (the clients' handlers).
 * Messages and presence come through the Topics helper's handlers
 * (`meshgatePublication`, `meshgatePresence`), which keep their order and offsets.
 */
export interface ChatClientApi {
  counter(value: number, by: string): void;
}

export const ROOM_BINDING = 'ROOM';
export const ROOM_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const MAX_MESSAGE_LENGTH = 500;
