/**
 * The client half of topics with history and presence. It remembers, per
 * topic, the position of the last publication it delivered, so a
 * re-subscribe asks for exactly what was missed; it delivers each
 * publication once, in offset order, whether it came live or from a
 * recovery; and it keeps each topic's presence list up to date.
 *
 *   const topics = new Topics({ storage: sessionStorage });
 *   const client = new MeshClient({ ..., handlers: { ...topics.handlers, ...mine },
 *     onSubscriptionRequired: () => topics.resubscribe() });
 *   topics.topic('room', { subscribe: (since) => room.join(since), onPublication: (data) => show(data) });
 *
 * A gap in the offsets (a notification lost, or another epoch) starts a
 * recovery by itself; publications that arrive meanwhile wait, so order holds.
 */
import {
  PRESENCE_HANDLER, PUBLICATION_HANDLER,
  type PresenceEvent, type PresenceMember, type PresenceSnapshot, type Publication, type Recovery, type TopicPosition,
} from '../protocol/topics.js';

/** Where positions are kept across page reloads: `sessionStorage`, `localStorage`, or anything with these two methods. */
export interface PositionStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface TopicsOptions {
  /** Keeps positions across reloads (default: none, in memory only). One key, `storageKey`, holds them all. */
  storage?: PositionStorage;
  /** default 'meshgate.topics' */
  storageKey?: string;
  /** A subscribe that failed, or a handler of yours that threw (default: console.error). */
  onError?: (error: unknown, topic: string) => void;
}

/** What the subscribe function answers: a recovery (`Subscriptions.recoverCaller`), with a presence snapshot if the topic has presence. */
export type Subscribed<T = unknown, M = unknown> = Recovery<T> & { presence?: PresenceSnapshot<M> & { version?: number } };

export interface TopicOptions<T = unknown, M = unknown> {
  /** Subscribes (calls your node's join method with `since`) and returns its answer. */
  subscribe(since: TopicPosition | undefined): Promise<Subscribed<T, M>>;
  /** Each publication once, in order; `recovered` when it came from a recovery (it was published while this client was away). */
  onPublication?(data: T, publication: Publication<T> & { recovered: boolean }): void;
  /** After each subscribe: `recovered: false` means publications may be missing: reload the state. */
  onRecovery?(result: { recovered: boolean; missed: number; position: TopicPosition }): void;
  /** The members now, after a snapshot (no event) or an event. */
  onPresence?(members: PresenceMember<M>[], event?: PresenceEvent<M>): void;
}

/** Live publications held while a recovery is under way; past this the oldest go, and the next recovery fetches them. */
const MAX_BUFFERED = 1024;
/** Recoveries in a row for one gap before giving up until the next publication or resubscribe. */
const MAX_RECOVERIES_IN_A_ROW = 3;

interface TopicState {
  options: TopicOptions<unknown, unknown>;
  position: TopicPosition | undefined;
  resuming: Promise<void> | undefined;
  buffer: Publication[];
  members: Map<string, PresenceMember>;
  /** the presence version last applied; events at or below it are already in */
  presenceVersion: number;
  presenceBuffer: Array<PresenceEvent & { version?: number }>;
}

function isPosition(value: unknown): value is TopicPosition {
  const v = value as TopicPosition | null;
  return typeof v === 'object' && v !== null && Number.isSafeInteger(v.offset) && v.offset >= 0 && typeof v.epoch === 'string';
}

export class Topics {
  readonly #topics = new Map<string, TopicState>();
  /** positions read from storage, for topics not registered yet */
  readonly #stored = new Map<string, TopicPosition>();
  readonly #options: TopicsOptions;

  /** Spread into MeshClient's `handlers`: the mesh delivers publications and presence changes to these. */
  readonly handlers: {
    meshgatePublication(publication: Publication): void;
    meshgatePresence(event: PresenceEvent & { version?: number }): void;
  };

  constructor(options: TopicsOptions = {}) {
    this.#options = options;
    this.handlers = {
      [PUBLICATION_HANDLER]: (publication: Publication) => this.#live(publication),
      [PRESENCE_HANDLER]: (event: PresenceEvent & { version?: number }) => this.#presence(event),
    } as Topics['handlers'];
    this.#load();
  }

  /** Registers a topic: it subscribes on the next `resubscribe()`, or at once through the returned `subscribe()`. */
  topic<T = unknown, M = unknown>(name: string, options: TopicOptions<T, M>): { subscribe(): Promise<void> } {
    const state: TopicState = {
      options: options as TopicOptions<unknown, unknown>, position: this.#stored.get(name), resuming: undefined, buffer: [],
      members: new Map(), presenceVersion: 0, presenceBuffer: [],
    };
    this.#topics.set(name, state);
    return { subscribe: () => this.#resume(name, state) };
  }

  /** Subscribes every registered topic (or those named) again, each from its last position: call it from `onSubscriptionRequired`. */
  async resubscribe(names?: Iterable<string>): Promise<void> {
    const only = names === undefined ? undefined : new Set(names);
    // A recovery already under way may have been sent before the gateway forgot this client: subscribe again after it.
    const again = (name: string, state: TopicState) =>
      (state.resuming ? state.resuming.catch(() => {}).then(() => this.#resume(name, state)) : this.#resume(name, state));
    const chosen = [...this.#topics].filter(([name]) => only === undefined || only.has(name));
    const results = await Promise.allSettled(chosen.map(([name, state]) => again(name, state)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Stops handling a topic here (unsubscribing on the server is your node's method). */
  forget(name: string): void {
    this.#topics.delete(name);
  }

  /** The last position delivered for `name`, if any. */
  position(name: string): TopicPosition | undefined {
    return this.#topics.get(name)?.position ?? this.#stored.get(name);
  }

  /** The members of `name` now, oldest first. */
  members<M = unknown>(name: string): PresenceMember<M>[] {
    return [...(this.#topics.get(name)?.members.values() ?? [])] as PresenceMember<M>[];
  }

  #live(publication: Publication): void {
    if (typeof publication?.topic !== 'string' || !isPosition(publication)) return;
    const state = this.#topics.get(publication.topic);
    if (!state) return;
    if (state.resuming) {
      state.buffer.push(publication);
      if (state.buffer.length > MAX_BUFFERED) state.buffer.shift();
      return;
    }
    const at = state.position;
    if (at && publication.epoch === at.epoch && publication.offset <= at.offset) return; // seen already
    if (!at || (publication.epoch === at.epoch && publication.offset === at.offset + 1)) {
      this.#deliver(publication.topic, state, publication, false);
      return;
    }
    // A gap, or another epoch: recover from where this client is; this one waits in the buffer.
    state.buffer.push(publication);
    this.#resume(publication.topic, state).catch(() => {}); // reported through onError
  }

  #resume(name: string, state: TopicState): Promise<void> {
    state.resuming ??= this.#recover(name, state).finally(() => {
      state.resuming = undefined;
    });
    return state.resuming;
  }

  async #recover(name: string, state: TopicState): Promise<void> {
    for (let round = 0; round < MAX_RECOVERIES_IN_A_ROW; round++) {
      let answer: Subscribed;
      try {
        answer = await state.options.subscribe(state.position);
      } catch (error) {
        this.#report(error, name);
        throw error;
      }
      if (!isPosition(answer) || !Array.isArray(answer.publications)) {
        const error = new TypeError(`The subscribe function for topic "${name}" must return what Subscriptions.recoverCaller returns.`);
        this.#report(error, name);
        throw error;
      }
      if (answer.recovered) for (const publication of answer.publications) this.#deliver(name, state, publication, true);
      const missed = answer.recovered ? answer.publications.length : 0;
      this.#setPosition(name, state, { offset: answer.offset, epoch: answer.epoch });
      if (answer.presence) this.#snapshot(name, state, answer.presence);
      this.#call(name, () => state.options.onRecovery?.({ recovered: answer.recovered, missed, position: state.position! }));
      if (!this.#flush(name, state)) return;
    }
  }

  /** Delivers buffered publications that follow on; false when none is left, true when a gap remains (recover again). */
  #flush(name: string, state: TopicState): boolean {
    const waiting = state.buffer.sort((a, b) => a.offset - b.offset);
    state.buffer = [];
    for (let i = 0; i < waiting.length; i++) {
      const publication = waiting[i]!;
      const at = state.position!;
      if (publication.epoch === at.epoch && publication.offset <= at.offset) continue;
      if (publication.epoch === at.epoch && publication.offset === at.offset + 1) {
        this.#deliver(name, state, publication, false);
        continue;
      }
      state.buffer = waiting.slice(i);
      return true;
    }
    return false;
  }

  #deliver(name: string, state: TopicState, publication: Publication, recovered: boolean): void {
    const at = state.position;
    if (at && publication.epoch === at.epoch && publication.offset <= at.offset) return;
    this.#setPosition(name, state, { offset: publication.offset, epoch: publication.epoch });
    this.#call(name, () => state.options.onPublication?.(publication.data, { ...publication, recovered }));
  }

  #presence(event: PresenceEvent & { version?: number }): void {
    if (typeof event?.topic !== 'string' || typeof event.sub !== 'string') return;
    const state = this.#topics.get(event.topic);
    if (!state) return;
    if (state.resuming) {
      if (state.presenceBuffer.length < MAX_BUFFERED) state.presenceBuffer.push(event);
      return;
    }
    this.#applyPresence(event.topic, state, event);
  }

  #applyPresence(name: string, state: TopicState, event: PresenceEvent & { version?: number }): void {
    if (event.version !== undefined) {
      if (event.version <= state.presenceVersion) return;
      state.presenceVersion = event.version;
    }
    if (event.kind === 'leave') state.members.delete(event.sub);
    else if (event.member && Array.isArray(event.member.connections)) state.members.set(event.sub, event.member);
    this.#call(name, () => state.options.onPresence?.(this.members(name), event));
  }

  #snapshot(name: string, state: TopicState, snapshot: PresenceSnapshot & { version?: number }): void {
    state.members = new Map((Array.isArray(snapshot.members) ? snapshot.members : []).map((m) => [m.sub, m]));
    state.presenceVersion = snapshot.version ?? 0;
    this.#call(name, () => state.options.onPresence?.(this.members(name)));
    const waiting = state.presenceBuffer;
    state.presenceBuffer = [];
    for (const event of waiting) this.#applyPresence(name, state, event);
  }

  #setPosition(name: string, state: TopicState, position: TopicPosition): void {
    state.position = position;
    this.#stored.set(name, position);
    this.#save();
  }

  #call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#report(error, name);
    }
  }

  #report(error: unknown, name: string): void {
    if (this.#options.onError) this.#options.onError(error, name);
    else console.error(`meshgate Topics: topic "${name}":`, error);
  }

  #key(): string {
    return this.#options.storageKey ?? 'meshgate.topics';
  }

  #load(): void {
    let saved: unknown;
    try {
      saved = JSON.parse(this.#options.storage?.getItem(this.#key()) ?? 'null');
    } catch {
      return; // unreadable: start without positions (the next subscribe is told recovered: false)
    }
    if (typeof saved !== 'object' || saved === null) return;
    for (const [name, position] of Object.entries(saved)) if (isPosition(position)) this.#stored.set(name, { offset: position.offset, epoch: position.epoch });
  }

  #save(): void {
    if (!this.#options.storage) return;
    try {
      this.#options.storage.setItem(this.#key(), JSON.stringify(Object.fromEntries(this.#stored)));
    } catch (error) {
      this.#report(error, '*'); // a full or refused storage costs only recovery across a reload
    }
  }
}
