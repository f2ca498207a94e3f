/**
 * One user in one chat room, over one MeshClient: used by the browser page
 * and the Node client alike. It shows the pattern meshgate is built around:
 *
 * - `onSubscriptionRequired` is the one place that (re)subscribes: the client
 *   calls it on the first connection and whenever the gateway forgot this
 *   client (the grace period ran out). A reconnect inside the grace period
 *   keeps the subscription on the server, so nothing is called.
 * - One case needs a look: a *new* page that reuses a tab id the gateway
 *   still remembers (a reload, or Leave then Join) is told it need not
 *   subscribe (`onConnected` with `firstConnection` and no
 *   `subscriptionRequired`). It asks the room whether it is subscribed
 *   (`snapshot()`), and only if not, runs the same subscribe function.
 * - The room pushes messages, presence and the counter to the client's
 *   handlers; the client never polls. Messages and presence go through the
 *   library's Topics helper: it remembers where this tab is in the room's
 *   history, so a resubscribe after the grace period recovers exactly the
 *   messages missed (shown marked as such), in order, once each.
 */
import {
  MeshClient, Topics, type ConnectionState, type MeshClientOptions, type PresenceMember, type SocketClass, type TopicPosition,
} from 'meshgate/client';
import {
  ROOM_BINDING, type ChatClientApi, type ChatMessage, type Delivery, type PresenceEntry, type RoomApi, type RoomSnapshot, type Typing,
} from '../shared.js';
import { devLogin } from './dev-login.js';

/** The room takes one presence change per tab per 100 ms. */
const TYPING_RETRY_MS = 150;

/** Connection events worth showing to a person. */
export type SessionEventKind =
  | 'connected' | 'joined' | 'connection-lost' | 'reconnected-in-grace' | 'resubscribed' | 'superseded' | 'took-over'
  | 'still-retrying' | 'login-required' | 'update-required' | 'error';

export interface SessionEvent {
  kind: SessionEventKind;
  /** for the person using the app */
  text: string;
  /** for the developer (the library's own message), where there is one */
  detail?: string;
  at: number;
}

export interface SessionListener {
  event?(event: SessionEvent): void;
  state?(state: ConnectionState): void;
  /** the whole room, after a (re)subscribe or on first load */
  snapshot?(snapshot: RoomSnapshot): void;
  /** `missed`: published while this tab was away, recovered from the room's history when it came back */
  message?(message: ChatMessage, missed: boolean): void;
  presence?(presence: PresenceEntry[]): void;
  counter?(value: number, by: string): void;
}

export interface RoomSessionOptions {
  /** The Worker's base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  name: string;
  room: string;
  listener: SessionListener;
  /** Node.js 20 has no global WebSocket: pass `ws`. */
  WebSocket?: SocketClass;
  /** Extra MeshClient options (timings, instanceName). */
  client?: Partial<MeshClientOptions<ChatClientApi>>;
}

export class RoomSession {
  readonly client: MeshClient<ChatClientApi>;
  readonly room: string;
  readonly name: string;
  readonly #listener: SessionListener;
  #everConnected = false;
  #lostSince: number | undefined;
  #outage = 'a moment';
  /** true once this session subscribed (or found its subscription kept) and has the room's state */
  #hasRoom = false;
  /** Resolves once this tab is in the room: a message typed before that waits for it rather than being refused. */
  readonly #inRoom: Promise<void>;
  #enteredRoom!: () => void;
  /** set by takeOver() until the connection it opened is live */
  #takingOver = false;
  readonly #topics: Topics;
  /** what the last (re)subscribe recovered, for the event log */
  #recovered: { recovered: boolean; missed: number } | undefined;
  /** whether this tab last told the room it is typing, and whether it is */
  #typing = false;
  #wantTyping = false;

  constructor(options: RoomSessionOptions) {
    this.#inRoom = new Promise<void>((resolve) => (this.#enteredRoom = resolve));
    this.room = options.room;
    this.name = options.name;
    this.#listener = options.listener;
    const listener = options.listener;
    // Positions live in memory: a reload inside the grace period keeps the subscription and needs none.
    const topics = (this.#topics = new Topics({ onError: (error) => this.#onError(error) }));
    topics.topic<ChatMessage, Typing>('room', {
      subscribe: (since) => this.#join(since),
      onPublication: (message, { recovered }) => listener.message?.(message, recovered),
      onRecovery: (result) => void (this.#recovered = result),
      onPresence: (members) => listener.presence?.(presenceEntries(members)),
    });
    const handlers = { ...topics.handlers, counter: (value: number, by: string) => listener.counter?.(value, by) } satisfies ChatClientApi;
    this.client = new MeshClient<ChatClientApi>({
      url: options.url,
      // A fresh token whenever the client needs one (first connect, or after 4401 expiry).
      refresh: () => devLogin(options.url, options.name),
      handlers,
      ...(options.WebSocket ? { WebSocket: options.WebSocket } : {}),
      onStateChange: (state) => this.#onState(state),
      onConnected: ({ subscriptionRequired, firstConnection }) => {
        if (this.#takingOver) {
          this.#takingOver = false;
          this.#emit('took-over', 'Took over: this tab is live again, and the other one now shows "superseded"');
          // While superseded this page missed what the room pushed: load the room again.
          void this.#loadSnapshot(false);
        } else if (firstConnection) {
          this.#emit('connected', `Connected as ${this.client.instanceName}`);
          // A new page on a tab id the gateway still remembers (a reload): the rooms
          // still have what that earlier page subscribed to, which may not be this room.
          if (!subscriptionRequired) void this.#loadSnapshot();
        } else if (!subscriptionRequired) {
          this.#emit('reconnected-in-grace', `Reconnected after ${this.#lostFor()} — inside the grace period, subscriptions kept`);
        }
      },
      onSubscriptionRequired: () => this.#subscribe(),
      onSuperseded: () => this.#emit('superseded', 'Superseded: this identity was opened elsewhere. This connection stopped and will not reconnect.'),
      onLoginRequired: (reason) => this.#emit('login-required', 'The server no longer accepts this login (was it restarted with a new secret?)', reason),
      onUpdateRequired: (reason) => this.#emit('update-required', 'A new version of this app is deployed: reload the page to update', reason),
      onError: (error) => this.#onError(error),
      ...options.client,
    });
  }

  async send(text: string): Promise<Delivery> {
    await this.#inRoom;
    return (await this.#roomStub().send(text)).delivery;
  }

  async increment(by = 1): Promise<Delivery> {
    await this.#inRoom;
    return (await this.#roomStub().increment(by)).delivery;
  }

  /** Tells the others this tab is typing, or stopped; only changes go out. One refused as too soon after the last is sent again a moment later. */
  typing(typing: boolean): void {
    this.#wantTyping = typing;
    if (typing === this.#typing || this.client.state !== 'connected') return;
    this.#typing = typing;
    this.#roomStub().typing(typing).catch((error: { limit?: string }) => {
      this.#typing = !typing;
      if (error?.limit === 'presence.minUpdateIntervalMs') setTimeout(() => this.typing(this.#wantTyping), TYPING_RETRY_MS);
    });
  }

  /**
   * After "superseded": connect again, which supersedes the tab that took
   * over. Not a lost connection, so it is reported as a takeover.
   */
  takeOver(): void {
    if (this.client.state !== 'superseded') return;
    this.#takingOver = true;
    void this.client.connect().catch((error) => this.#onError(error));
  }

  /** Leaves the room on the server and closes the connection for good. */
  async close(): Promise<void> {
    if (this.client.state === 'connected') await this.#roomStub().leave().catch(() => undefined);
    this.client.disconnect();
    this.#enteredRoom(); // a message still waiting for the room now fails with ClientClosedError
  }

  // ── connection events ────────────────────────────────────────────────────

  /** The one function that subscribes: from onSubscriptionRequired (and from #loadSnapshot when the room says we are not subscribed). */
  async #subscribe(): Promise<void> {
    await this.#topics.resubscribe();
    const again = this.#hasRoom;
    this.#hasRoom = true;
    this.#enteredRoom();
    const missed = this.#recovered?.recovered ? `; ${this.#recovered.missed} missed message(s) recovered` : '';
    if (again) this.#emit('resubscribed', `Resubscribed to "${this.room}" after ${this.#lostFor()} away: the server had forgotten this tab (grace period over, or a restart)${missed}`);
    else this.#emit('joined', `Joined room "${this.room}"`);
  }

  /** What Topics calls to (re)subscribe: join from where this tab is in the history; the room comes back with it. */
  async #join(since: TopicPosition | undefined) {
    const joined = await this.#roomStub().join(since, false);
    this.#typing = false;
    this.#wantTyping = false;
    this.#listener.snapshot?.(joined);
    return { ...joined.recovery, presence: joined.members };
  }

  /**
   * The client's errors are written for developers. While it is (re)connecting
   * they mean "the server cannot be reached yet": say that, and keep the
   * library's message as the detail.
   */
  #onError(error: unknown): void {
    const detail = (error as Error)?.message ?? String(error);
    if (this.client.state === 'connecting' || this.client.state === 'reconnecting') {
      this.#emit('still-retrying', 'Cannot reach the server yet — still trying, nothing to do', detail);
    } else {
      this.#emit('error', 'Something went wrong in this page (details in the console)', detail);
    }
  }

  #onState(state: ConnectionState): void {
    this.#listener.state?.(state);
    if (this.#takingOver) return; // leaving "superseded" on purpose: no outage to measure
    if (state === 'connected') {
      this.#everConnected = true;
      // Measured now: onConnected / onSubscriptionRequired run right after this callback.
      this.#outage = this.#lostSince === undefined ? 'a moment' : `${((Date.now() - this.#lostSince) / 1000).toFixed(1)} s`;
      this.#lostSince = undefined;
    } else if (state === 'reconnecting' && this.#everConnected && this.#lostSince === undefined) {
      this.#lostSince = Date.now();
      this.#emit('connection-lost', 'Connection lost — reconnecting');
    }
  }

  /**
   * A first connection that did not need to subscribe: this identity (tab id)
   * was connected moments ago and the gateway still remembers it — a reload,
   * or Leave then Join. The rooms still have what that earlier page
   * subscribed to, which may not be this room: ask, and subscribe if not.
   */
  async #loadSnapshot(announce = true): Promise<void> {
    try {
      const { subscribed } = await this.#roomStub().snapshot();
      if (!subscribed) return await this.#subscribe();
      // Still subscribed: joining again changes nothing on the server, and gives this page presence and its place in the history.
      await this.#topics.resubscribe();
      this.#hasRoom = true;
      this.#enteredRoom();
      if (announce) this.#emit('joined', `Back in room "${this.room}" (still subscribed from before the reload)`);
    } catch (error) {
      this.#emit('error', 'Could not load the room (details in the console)', (error as Error).message);
    }
  }

  #roomStub() {
    return this.client.node<RoomApi>(ROOM_BINDING, this.room);
  }

  /** How long the last outage lasted, for the event log. */
  #lostFor(): string {
    return this.#outage;
  }

  #emit(kind: SessionEventKind, text: string, detail?: string): void {
    this.#listener.event?.({ kind, text, at: Date.now(), ...(detail === undefined ? {} : { detail }) });
  }
}

/** One entry per user for the page: how many tabs it has here, and whether one of them is typing. */
function presenceEntries(members: PresenceMember<Typing>[]): PresenceEntry[] {
  return members
    .map((m) => ({ sub: m.sub, connections: m.connections.length, typing: m.connections.some((c) => c.meta?.typing === true) }))
    .sort((a, b) => a.sub.localeCompare(b.sub));
}
