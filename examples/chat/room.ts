/**
 * A chat room: one Durable Object per room. Messages and the counter live in
 * the room's SQLite; who is listening lives in the library's Subscriptions
 * helper (same SQLite). Presence is the set of subscribers, so it is exactly
 * as fresh as the subscriptions: a closed tab leaves once its gateway's grace
 * period is over and a fan-out (a message, or the periodic check) finds it gone.
 */
import { ForbiddenError, MeshDurableObject, Subscriptions, getCallContext, mesh, type FanOutSummary } from 'meshgate';
import {
  MAX_MESSAGE_LENGTH, type ChatClientApi, type ChatMessage, type Delivery, type PresenceEntry, type RoomApi, type RoomSnapshot,
} from './shared.js';

export interface RoomEnv {
  /** How often the room checks that its subscribers are still there (ms, default 10 s). */
  PRESENCE_CHECK_MS?: string;
}

const TOPIC = 'room';
const HISTORY = 50;
/** A subscriber that takes longer than this to take a message is reported, not dropped. */
const DELIVERY_TIMEOUT_MS = 5_000;

function delivery(summary: FanOutSummary): Delivery {
  return {
    total: summary.total, delivered: summary.delivered, dropped: summary.dropped.length,
    timedOut: summary.timedOut.length, failed: summary.failed.length,
  };
}

export class ChatRoom extends MeshDurableObject<RoomEnv> implements Record<keyof RoomApi, unknown> {
  readonly #subs = new Subscriptions(this.ctx.storage, this.mesh, { timeoutMs: DELIVERY_TIMEOUT_MS });
  readonly #sql = this.ctx.storage.sql;

  constructor(ctx: DurableObjectState, env: RoomEnv) {
    super(ctx, env);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)`);
  }

  @mesh
  async join(): Promise<RoomSnapshot> {
    const isNew = !this.#subs.list(TOPIC).includes(this.#callerInstance());
    this.#subs.subscribeCaller(TOPIC);
    await this.#scheduleCheck();
    if (isNew) this.#broadcastPresence();
    return this.snapshot();
  }

  @mesh
  snapshot(): RoomSnapshot {
    const messages = this.#sql.exec<{ id: number; sender: string; text: string; at: number }>(
      `SELECT id, sender, text, at FROM messages ORDER BY id DESC LIMIT ?`, HISTORY,
    ).toArray().reverse().map((row) => ({ id: row.id, from: row.sender, text: row.text, at: row.at }));
    const origin = getCallContext()?.origin;
    const subscribed = origin?.kind === 'client' && this.#subs.list(TOPIC).includes(origin.instance);
    return { room: this.#roomName(), subscribed, messages, presence: this.#presence(), counter: this.#counter() };
  }

  @mesh
  leave(): void {
    if (this.#subs.unsubscribe(TOPIC, this.#callerInstance())) this.#broadcastPresence();
  }

  @mesh
  async send(text: string): Promise<{ message: ChatMessage; delivery: Delivery }> {
    const from = this.#callerSub();
    const clean = String(text ?? '').trim();
    if (!clean) throw new RangeError('Message is empty.');
    if (clean.length > MAX_MESSAGE_LENGTH) throw new RangeError(`Message is longer than ${MAX_MESSAGE_LENGTH} characters.`);
    const at = Date.now();
    const { id } = this.#sql.exec<{ id: number }>(`INSERT INTO messages (sender, text, at) VALUES (?, ?, ?) RETURNING id`, from, clean, at).one();
    const message: ChatMessage = { id, from, text: clean, at };
    // The sender's own tabs get it through the fan-out too: one path for everyone.
    const summary = await this.#subs.fanOut<ChatClientApi>(TOPIC, 'message', [message]);
    this.#afterFanOut(summary);
    return { message, delivery: delivery(summary) };
  }

  @mesh
  async increment(by = 1): Promise<{ counter: number; delivery: Delivery }> {
    const step = Number.isInteger(by) && Math.abs(by) <= 100 ? by : 1;
    const { value } = this.#sql.exec<{ value: number }>(
      `INSERT INTO counter (id, value) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET value = value + excluded.value RETURNING value`, step,
    ).one();
    const summary = await this.#subs.fanOut<ChatClientApi>(TOPIC, 'counter', [value, this.#callerSub()]);
    this.#afterFanOut(summary);
    return { counter: value, delivery: delivery(summary) };
  }

  /** Periodic presence check: a fan-out is how the room learns which subscribers are gone. */
  override async alarm(): Promise<void> {
    if (this.#subs.count(TOPIC) === 0) return; // nobody left: stop checking until the next join
    const summary = await this.#subs.fanOut<ChatClientApi>(TOPIC, 'presence', [this.#presence()]);
    this.#afterFanOut(summary);
    await this.#scheduleCheck(true);
  }

  // ── helpers ──────────────────────────────────────────────────────────────

  /** Someone was dropped: everyone else should see them leave. */
  #afterFanOut(summary: FanOutSummary): void {
    if (summary.dropped.length > 0) this.#broadcastPresence();
  }

  /** Not awaited: a join or a message must not wait for every tab to hear about presence. */
  #broadcastPresence(): void {
    const presence = this.#presence();
    this.#subs.fanOut<ChatClientApi>(TOPIC, 'presence', [presence]).then(
      (summary) => this.#afterFanOut(summary),
      (error) => console.error('presence fan-out failed:', error),
    );
  }

  async #scheduleCheck(force = false): Promise<void> {
    if (!force && (await this.ctx.storage.getAlarm()) !== null) return;
    await this.ctx.storage.setAlarm(Date.now() + Number(this.env.PRESENCE_CHECK_MS ?? 10_000));
  }

  #presence(): PresenceEntry[] {
    const bySub = new Map<string, number>();
    // Instance names are `{sub}.{tabId}`, and a sub has no dots.
    for (const instance of this.#subs.list(TOPIC)) {
      const sub = instance.slice(0, instance.indexOf('.'));
      bySub.set(sub, (bySub.get(sub) ?? 0) + 1);
    }
    return [...bySub].map(([sub, connections]) => ({ sub, connections })).sort((a, b) => a.sub.localeCompare(b.sub));
  }

  #counter(): number {
    return this.#sql.exec<{ value: number }>(`SELECT value FROM counter WHERE id = 1`).toArray()[0]?.value ?? 0;
  }

  #roomName(): string {
    return this.ctx.id.name ?? 'room';
  }

  /** The verified user behind the call (from the token, never from the client's arguments). */
  #callerSub(): string {
    const sub = getCallContext()?.originAuth?.sub;
    if (!sub) throw new ForbiddenError('Only a logged-in client can do this.');
    return sub;
  }

  #callerInstance(): string {
    const origin = getCallContext()?.origin;
    if (origin?.kind !== 'client') throw new ForbiddenError('Only a client can join or leave a room.');
    return origin.instance;
  }
}
