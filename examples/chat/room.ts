/**
 * A chat room: one Durable Object per room. Messages and the counter live in
 * the room's SQLite; who is listening lives in the library's Subscriptions
 * helper (same SQLite), which also keeps the topic's history, so a tab back
 * after its grace period gets the messages it missed (`recoverCaller`). Who
 * is here, and who is typing, is the library's Presence: a closed tab leaves
 * as soon as its gateway's grace period ends (the gateway tells the room).
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
import {
  ForbiddenError, MeshDurableObject, Presence, Subscriptions, getCallContext, mesh, type CallContext, type Guard, type NotifySummary,
} from 'meshgate';
import {
  MAX_MESSAGE_LENGTH, type ChatClientApi, type ChatMessage, type Delivery, type JoinedRoom, type PresenceEntry, type RoomApi, type RoomSnapshot, type Typing,
} from './shared.js';

const TOPIC = 'room';
const HISTORY = 50;
/** What a tab back after its grace period can recover: the last 200 messages of the last hour. */
const RECOVERY = { maxCount: 200, maxAgeMs: 60 * 60_000 };
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

/** Where a tab was in the room's history, as its last message told it; checked again by recoverCaller. */
const Position = v.optional(v.object({ offset: v.pipe(v.number(), v.integer(), v.minValue(0)), epoch: v.pipe(v.string(), v.maxLength(64)) }));
const IsTyping = v.optional(v.boolean('Typing is true or false.'), false);

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

export class ChatRoom extends MeshDurableObject implements Record<keyof RoomApi, unknown> {
  readonly #subs = new Subscriptions(this.ctx.storage, this.mesh, { timeoutMs: DELIVERY_TIMEOUT_MS, history: RECOVERY });
  readonly #here = new Presence(this.ctx.storage, this.mesh, { maxMetaBytes: 64, timeoutMs: DELIVERY_TIMEOUT_MS });
  readonly #sql = this.ctx.storage.sql;

  /** Every method that names no guard of its own: members only. */
  static override guard: Guard<ChatRoom> = (context, room) => {
    room.#member(context);
    return true;
  };

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)`);
    // Who moved the counter last; a table of its own so rooms stored before it need no migration.
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS counter_by (id INTEGER PRIMARY KEY CHECK (id = 1), sub TEXT NOT NULL)`);
  }

  /** Subscribes the caller (with what it missed since `since`) and makes it present; returns the room as it is now. */
  @mesh({ args: [Position, IsTyping], guard: clientTab })
  async join(since: { offset: number; epoch: string } | undefined, typing: boolean): Promise<JoinedRoom> {
    const recovery = this.#subs.recoverCaller<ChatMessage>(TOPIC, since);
    const members = await this.#here.joinCaller<Typing>(TOPIC, { typing });
    return { ...this.snapshot(), recovery, members };
  }

  /** Who is typing: the other tabs see it at once (at most one change per 100 ms per tab). */
  @mesh({ args: [IsTyping] })
  async typing(typing: boolean): Promise<void> {
    await this.#here.updateCaller(TOPIC, { typing });
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
  async leave(): Promise<void> {
    const instance = this.#callerInstance();
    this.#subs.unsubscribe(TOPIC, instance);
    await this.#here.leave(TOPIC, instance);
  }

  @mesh({ args: [MessageText] })
  async send(clean: string): Promise<{ message: ChatMessage; delivery: Delivery }> {
    const from = this.#member();
    const at = Date.now();
    const { id } = this.#sql.exec<{ id: number }>(`INSERT INTO messages (sender, text, at) VALUES (?, ?, ?) RETURNING id`, from, clean, at).one();
    const message: ChatMessage = { id, from, text: clean, at };
    // Kept in the topic's history with an offset, then to every subscriber (the sender's own tabs too: one path for everyone).
    const summary = await this.#subs.publish(TOPIC, message);
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
    return { counter: value, delivery: delivery(summary) };
  }

  // ── helpers ──────────────────────────────────────────────────────────────

  /** One entry per user, with how many tabs it has here and whether any of them is typing. */
  #presence(): PresenceEntry[] {
    return this.#here.snapshot<Typing>(TOPIC).members
      .map((m) => ({ sub: m.sub, connections: m.connections.length, typing: m.connections.some((c) => c.meta?.typing === true) }))
      .sort((a, b) => a.sub.localeCompare(b.sub));
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
