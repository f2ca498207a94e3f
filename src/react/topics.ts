/**
 * useTopic: a topic of the Topics helper (history, recovery, presence) held
 * by a component. One Topics per shared client serves every useTopic under
 * its provider; its handlers are registered like useIncoming's while any
 * topic is held. A topic subscribes on the first connection it sees and again
 * whenever a connection says `subscriptionRequired`, never on a re-render.
 */
import { useCallback, useRef, useSyncExternalStore } from 'react';
import { Topics, type Subscribed } from '../client/topics.js';
import { PRESENCE_HANDLER, PUBLICATION_HANDLER, type PresenceMember, type Publication, type TopicPosition } from '../protocol/topics.js';
import { useShared } from './hooks.js';
import type { SharedClient } from './shared-client.js';

export interface UseTopicOptions<T, M> {
  /** Subscribes (calls your node's join method with `since`) and returns what `Subscriptions.recoverCaller` returns, with `presence` if the topic has it. */
  subscribe(since: TopicPosition | undefined): Promise<Subscribed<T, M>>;
  /** How many of the latest publications the hook returns (default 100). */
  keep?: number;
  /** Each publication once, in order, as it arrives (the latest render's function is called). */
  onPublication?(data: T, publication: Publication<T> & { recovered: boolean }): void;
  /** After each subscribe: `recovered: false` means publications may be missing: reload the state. */
  onRecovery?(result: { recovered: boolean; missed: number; position: TopicPosition }): void;
}

export interface TopicView<T, M> {
  /** the latest `keep` publications, oldest first; `recovered` marks those published while this client was away */
  publications: ReadonlyArray<Publication<T> & { recovered: boolean }>;
  /** the topic's presence members, oldest first (empty when the topic has no presence) */
  members: ReadonlyArray<PresenceMember<M>>;
  /** the last subscribe's outcome, once one succeeded */
  recovery: { recovered: boolean; missed: number; position: TopicPosition } | undefined;
  /** the last subscribe's error (it is tried again at the next connection) */
  error: unknown;
  subscribing: boolean;
}

const DEFAULT_KEEP = 100;
const EMPTY: TopicView<never, never> = Object.freeze({ publications: [], members: [], recovery: undefined, error: undefined, subscribing: false });

interface Entry {
  name: string;
  options: { current: UseTopicOptions<unknown, unknown> };
  listeners: Set<() => void>;
  view: TopicView<unknown, unknown>;
  /** the connection (SharedClient's `connections`) this topic last checked; 0 before its first */
  handled: number;
}

/** The Topics of one shared client and the topics its components hold. */
class TopicHub {
  readonly topics: Topics;
  readonly #entries = new Map<string, Entry>();
  #release: Array<() => void> = [];

  constructor(private readonly shared: SharedClient<object>) {
    this.topics = new Topics({ onError: (error, name) => this.#set(this.#entries.get(name), { error, subscribing: false }) });
  }

  view(name: string): TopicView<unknown, unknown> {
    return this.#entries.get(name)?.view ?? EMPTY;
  }

  /** Holds `name` while `listener` is attached; the release waits a microtask, so StrictMode's immediate remount keeps the subscription. */
  hold(name: string, options: Entry['options'], listener: () => void): () => void {
    let entry = this.#entries.get(name);
    // Released and taken by another component in one commit (a new `key`): that one subscribes afresh. StrictMode's remount keeps its ref.
    if (entry && entry.listeners.size === 0 && entry.options !== options) {
      this.#close(entry);
      entry = undefined;
    }
    entry ??= this.#open(name, options);
    entry.options = options;
    entry.listeners.add(listener);
    const held = entry;
    return () => {
      held.listeners.delete(listener);
      queueMicrotask(() => {
        if (held.listeners.size === 0 && this.#entries.get(name) === held) this.#close(held);
      });
    };
  }

  #open(name: string, options: Entry['options']): Entry {
    const entry: Entry = { name, options, listeners: new Set(), view: EMPTY, handled: 0 };
    this.#entries.set(name, entry);
    this.topics.topic<unknown, unknown>(name, {
      subscribe: (since) => entry.options.current.subscribe(since),
      onPublication: (data, publication) => {
        const keep = entry.options.current.keep ?? DEFAULT_KEEP;
        const publications = [...entry.view.publications, publication];
        this.#set(entry, { publications: publications.slice(Math.max(0, publications.length - keep)) });
        entry.options.current.onPublication?.(data, publication);
      },
      onRecovery: (recovery) => {
        this.#set(entry, { recovery, error: undefined, subscribing: false });
        entry.options.current.onRecovery?.(recovery);
      },
      onPresence: (members) => this.#set(entry, { members }),
    });
    if (this.#entries.size === 1) {
      const handlers = this.topics.handlers as unknown as Record<string, (...args: never[]) => unknown>;
      this.#release = [
        this.shared.register(PUBLICATION_HANDLER, { current: handlers[PUBLICATION_HANDLER]! }),
        this.shared.register(PRESENCE_HANDLER, { current: handlers[PRESENCE_HANDLER]! }),
        this.shared.subscribe(() => this.#check()),
      ];
    }
    queueMicrotask(() => this.#check()); // not during the render or effect that opened it
    return entry;
  }

  #close(entry: Entry): void {
    this.#entries.delete(entry.name);
    this.topics.forget(entry.name);
    if (this.#entries.size === 0) for (const release of this.#release.splice(0)) release();
  }

  /** Subscribes each topic at the first connection it sees, and after a connection the gateway had forgotten this client on. */
  #check(): void {
    const { state, connections, subscriptionRequired } = this.shared.snapshot;
    if (state !== 'connected') return;
    for (const entry of this.#entries.values()) {
      if (entry.handled === connections) continue;
      const first = entry.handled === 0;
      entry.handled = connections;
      if (!first && !subscriptionRequired) continue;
      this.#set(entry, { subscribing: true });
      this.topics.resubscribe([entry.name]).catch(() => {
        // The error reaches the view through onError; the next connection tries again, as a first one would.
        if (entry.handled === connections) entry.handled = 0;
      });
    }
  }

  #set(entry: Entry | undefined, change: Partial<TopicView<unknown, unknown>>): void {
    if (!entry || this.#entries.get(entry.name) !== entry) return;
    entry.view = { ...entry.view, ...change };
    for (const listener of [...entry.listeners]) listener();
  }
}

const hubs = new WeakMap<SharedClient<object>, TopicHub>();

function hubOf(shared: SharedClient<object>): TopicHub {
  let hub = hubs.get(shared);
  if (!hub) hubs.set(shared, (hub = new TopicHub(shared)));
  return hub;
}

/**
 * A topic with history and presence, for as long as the component is
 * mounted: subscribed at the first connection and again after each one the
 * gateway had forgotten this client on, from the last publication it saw
 * (so nothing is missed while the gateway kept it). Components using one
 * name share its subscription; the latest render's options are used.
 * Unmounting stops handling the topic here; unsubscribing on the server is
 * your node's method.
 */
export function useTopic<T = unknown, M = unknown>(name: string, options: UseTopicOptions<T, M>): TopicView<T, M> {
  const keep = options.keep ?? DEFAULT_KEEP;
  if (!(keep === Infinity || (Number.isSafeInteger(keep) && keep >= 0))) {
    throw new RangeError(`useTopic("${name}"): keep must be a whole number of publications (0 or more), not ${String(options.keep)}.`);
  }
  const hub = hubOf(useShared('useTopic'));
  const options_ = useRef(options as UseTopicOptions<unknown, unknown>);
  options_.current = options as UseTopicOptions<unknown, unknown>;
  const subscribe = useCallback((listener: () => void) => hub.hold(name, options_, listener), [hub, name]);
  const read = useCallback(() => hub.view(name), [hub, name]);
  return useSyncExternalStore(subscribe, read, read) as TopicView<T, M>;
}
