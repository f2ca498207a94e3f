/**
 * A chat room: one Durable Object per room. Messages and the counter live in
 * the room's SQLite; who is listening lives in the library's Subscriptions
 * helper (same SQLite). Presence is the set of subscribers, so it is exactly
 * as fresh as the subscriptions: a closed tab leaves once its gateway's grace
 * period is over and a fan-out (a message, or the periodic check) finds it gone.
 *
 * Every fan-out is a notification (`Subscriptions.notify`): the room hands
 * each message to the subscribers' gateways and returns, so a `send()` takes
 * milliseconds whatever the tabs do, and the room holds nothing open after it.
 *
 * Every method is checked before it runs: a valibot schema per argument
 * (the method gets the checked, trimmed value) and a guard. Only members —
 * users with a tab that joined — may post or move the counter (the class
 * guard); who the caller is comes from the verified token.
 */
import * as v from 'valibot';
import { ForbiddenError, MeshDurableObject, Subscriptions, getCallContext, mesh, type CallContext, type Guard, type NotifySummary } from 'meshgate';
import {
  MAX_MESSAGE_LENGTH, type ChatClientApi, type ChatMessage, type Delivery, type PresenceEntry, type RoomApi, type RoomSnapshot,
} from './shared.js';

export interface RoomEnv {
  /** How often the room checks that its subscribers are still there (ms, default 10 s). */
  PRESENCE_CHECK_MS?: string;
}

const TOPIC = 'room';
const HISTORY = 50;
/**
 * A subscriber that leaves a message unanswered longer than this gets no more
 * until it answers; three such in a row and it leaves the room.
 */
const DELIVERY_TIMEOUT_MS = 5_000;
/** The largest step of the shared counter, either way. */
const MAX_STEP = 100;

/** Instance names are `{sub}.{tabId}`; a tab id has no dot, a sub may. */
function subOf(instance: string): string {
  return instance.slice(0, instance.lastIndexOf('.'));
}

function delivery(summary: NotifySummary): Delivery {
  return {
    total: summary.total, delivered: summary.sent + summary.queued, dropped: summary.dropped.length,
    timedOut: summary.timedOut.length, failed: summary.failed.length,
  };
}

const gotType = (issue: { input: unknown }) => (issue.input === null ? 'null' : typeof issue.input);

/** The message text: a string first (nothing else is touched), then its length, then not blank; trimmed. */
const MessageText = v.pipe(
  v.string((issue) => `A message must be a string, got ${gotType(issue)}.`),
  v.maxLength(MAX_MESSAGE_LENGTH, `Message is longer than ${MAX_MESSAGE_LENGTH} characters.`),
  v.trim(),
  v.nonEmpty('Message is empty.'),
);

const STEP_RULE = `The counter moves by a whole number from -${MAX_STEP} to ${MAX_STEP} other than 0.`;
/** The counter step: an integer from -MAX_STEP to MAX_STEP other than 0 (1 when not given). */
const CounterStep = v.optional(v.pipe(v.number(STEP_RULE), v.integer(STEP_RULE), v.minValue(-MAX_STEP, STEP_RULE), v.maxValue(MAX_STEP, STEP_RULE), v.notValue(0, STEP_RULE)), 1);

/** Joining and leaving: a client's own tab, so the room knows whom to subscribe. */
const clientTab: Guard = (context: CallContext) => {
  if (context.origin.kind !== 'client') throw new ForbiddenError('Only a client can join or leave a room.');
  return true;
};
/** Reading the room: anyone logged in. */
const loggedIn: Guard = (context: CallContext) => {
  if (!context.originAuth?.sub) throw new ForbiddenError('Only a logged-in client can do this.');
  return true;
};

export class ChatRoom extends MeshDurableObject<RoomEnv> implements Record<keyof RoomApi, unknown> {
  readonly #subs = new Subscriptions(this.ctx.storage, this.mesh, { timeoutMs: DELIVERY_TIMEOUT_MS });
  readonly #sql = this.ctx.storage.sql;

  /** Every method that names no guard of its own: members only. */
  static override guard: Guard<ChatRoom> = (context, room) => {
    room.#member(context);
    return true;
  };

  constructor(ctx: DurableObjectState, env: RoomEnv) {
    super(ctx, env);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)`);
    // Who moved the counter last; a table of its own so rooms stored before it need no migration.
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS counter_by (id INTEGER PRIMARY KEY CHECK (id = 1), sub TEXT NOT NULL)`);
  }

  @mesh({ args: [], guard: clientTab })
  async join(): Promise<RoomSnapshot> {
    const isNew = !this.#subs.list(TOPIC).includes(this.#callerInstance());
    this.#subs.subscribeCaller(TOPIC);
    await this.#scheduleCheck();
    if (isNew) this.#broadcastPresence();
    return this.snapshot();
  }

  @mesh({ args: [], guard: loggedIn })
  snapshot(): RoomSnapshot {
    const messages = this.#sql.exec<{ id: number; sender: string; text: string; at: number }>(
      `SELECT id, sender, text, at FROM messages ORDER BY id DESC LIMIT ?`, HISTORY,
    ).toArray().reverse().map((row) => ({ id: row.id, from: row.sender, text: row.text, at: row.at }));
    const origin = getCallContext()?.origin;
    const subscribed = origin?.kind === 'client' && this.#subs.list(TOPIC).includes(origin.instance);
    const counterBy = this.#sql.exec<{ sub: string }>(`SELECT sub FROM counter_by WHERE id = 1`).toArray()[0]?.sub;
    return { room: this.#roomName(), subscribed, messages, presence: this.#presence(), counter: this.#counter(), ...(counterBy === undefined ? {} : { counterBy }) };
  }

  @mesh({ args: [], guard: clientTab })
  leave(): void {
    if (this.#subs.unsubscribe(TOPIC, this.#callerInstance())) this.#broadcastPresence();
  }

  @mesh({ args: [MessageText] })
  async send(clean: string): Promise<{ message: ChatMessage; delivery: Delivery }> {
    const from = this.#member();
    const at = Date.now();
    const { id } = this.#sql.exec<{ id: number }>(`INSERT INTO messages (sender, text, at) VALUES (?, ?, ?) RETURNING id`, from, clean, at).one();
    const message: ChatMessage = { id, from, text: clean, at };
    // The sender's own tabs get it through the fan-out too: one path for everyone.
    const summary = await this.#subs.notify<ChatClientApi>(TOPIC, 'message', [message]);
    this.#afterFanOut(summary);
    return { message, delivery: delivery(summary) };
  }

  @mesh({ args: [CounterStep] })
  async increment(step: number): Promise<{ counter: number; delivery: Delivery }> {
    const from = this.#member();
    const { value } = this.#sql.exec<{ value: number }>(
      `INSERT INTO counter (id, value) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET value = value + excluded.value RETURNING value`, step,
    ).one();
    this.#sql.exec(`INSERT INTO counter_by (id, sub) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET sub = excluded.sub`, from);
    const summary = await this.#subs.notify<ChatClientApi>(TOPIC, 'counter', [value, from]);
    this.#afterFanOut(summary);
    return { counter: value, delivery: delivery(summary) };
  }

  /** Periodic presence check: a fan-out is how the room learns which subscribers are gone. */
  override async alarm(): Promise<void> {
    if (this.#subs.count(TOPIC) === 0) return; // nobody left: stop checking until the next join
    const summary = await this.#subs.notify<ChatClientApi>(TOPIC, 'presence', [this.#presence()]);
    this.#afterFanOut(summary);
    await this.#scheduleCheck(true);
  }

  // ── helpers ──────────────────────────────────────────────────────────────

  /** Someone was dropped: everyone else should see them leave. */
  #afterFanOut(summary: NotifySummary): void {
    if (summary.dropped.length > 0) this.#broadcastPresence();
  }

  /** Not awaited: a join or a leave answers without waiting for the gateways to take the presence list. */
  #broadcastPresence(): void {
    const presence = this.#presence();
    this.#subs.notify<ChatClientApi>(TOPIC, 'presence', [presence]).then(
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
    for (const instance of this.#subs.list(TOPIC)) {
      const sub = subOf(instance);
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
  #callerSub(context = getCallContext()): string {
    const sub = context?.originAuth?.sub;
    if (!sub) throw new ForbiddenError('Only a logged-in client can do this.');
    return sub;
  }

  /** The caller's sub, if one of their tabs has joined this room; else a refusal that says what to do. */
  #member(context = getCallContext()): string {
    const sub = this.#callerSub(context);
    if (!this.#subs.list(TOPIC).some((instance) => subOf(instance) === sub)) {
      throw new ForbiddenError(`Only members of room "${this.#roomName()}" may post to it: join it first.`);
    }
    return sub;
  }

  #callerInstance(): string {
    const origin = getCallContext()?.origin;
    if (origin?.kind !== 'client') throw new ForbiddenError('Only a client can join or leave a room.');
    return origin.instance;
  }
}
