/**
 * The topic object's side of fan-out relays (relay.ts): whether a fan-out
 * goes through them, and the job it hands them. A topic below
 * `minSubscribers`, or an app that binds no relay, keeps the loop in its own
 * object.
 */
import { encodeValue } from '../protocol/codec.js';
import { DEFAULTS, isDurationMs } from '../protocol/limits.js';
import { isNamespace } from '../bindings/kinds.js';
import type { MeshApi } from '../nodes/mesh-api.js';
import { decodeValue } from '../protocol/codec.js';
import { RELAY_HOP_MARGIN_MS, throughChildren, type RelayJob, type RelayedAnswer } from './relay.js';
import { FanOutRelayError, isAnswerList } from './relay-answers.js';
import { failure } from '../protocol/failure.js';
import { callOne, notifyOne, type NotifyOutcome, type SubscriberOutcome } from './fan-out.js';

export interface RelayOptions {
  /** The `FanOutRelay` binding (default 'FANOUT_RELAY'). Named here and missing from env: the constructor throws; the default missing: no relays. */
  binding?: string;
  /**
   * A fan-out to at least this many subscribers goes through relays (default 300: past one slice by
   * about a hop's worth of sends, relays deliver sooner than the loop, and at any size the topic's
   * object does a tenth of the loop's work; bench: hot_object, fanout_tree).
   */
  minSubscribers?: number;
  /** Subscribers one relay calls itself (default 256, at most 4 096). */
  sliceSize?: number;
  /** Relays the topic object, or one relay, calls directly (default 32, 2 to 256); more slices make a deeper tree. */
  maxChildren?: number;
}

export const RELAY_DEFAULTS = { binding: 'FANOUT_RELAY', minSubscribers: 300, sliceSize: 256, maxChildren: 32 } as const;
export const RELAY_CAPS = { sliceSize: 4096, maxChildren: 256 } as const;
/** Characters of answers (results and errors) one fan-out carries back through its relays, shared among them by their slices. */
export const RELAYED_ANSWER_CHARS = 16 * 1024 * 1024;
/** What a leaf relay waits beyond its slice's timeouts: its gateways' hops and answers. */
const RELAY_SLACK_MS = 5_000;
/**
 * Most timeouts in a row one leaf relay waits for: its slice at `concurrency`
 * needs ceil(slice / concurrency) when every subscriber sits on its timeout
 * (4 with the defaults). Past this, the last of the slice are not called
 * (`relay_not_reached`, kept subscribed): a relay never waits minutes on end.
 */
export const RELAY_MAX_ROUNDS = 8;

type Settings = Required<RelayOptions>;

function whole(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`Subscriptions option relays.${name} must be a whole number from ${min} to ${max}, got ${String(value)}.`);
  return v;
}

/** The settings, or undefined when fan-outs never use relays (turned off, or the default binding is not in env). */
function settingsOf(mesh: MeshApi, options: RelayOptions | false | undefined): Settings | undefined {
  if (options === false) return undefined;
  const binding = options?.binding ?? RELAY_DEFAULTS.binding;
  const settings: Settings = {
    binding,
    minSubscribers: whole('minSubscribers', options?.minSubscribers, RELAY_DEFAULTS.minSubscribers, 1, Number.MAX_SAFE_INTEGER),
    sliceSize: whole('sliceSize', options?.sliceSize, RELAY_DEFAULTS.sliceSize, 1, RELAY_CAPS.sliceSize),
    maxChildren: whole('maxChildren', options?.maxChildren, RELAY_DEFAULTS.maxChildren, 2, RELAY_CAPS.maxChildren),
  };
  if (isNamespace(mesh.binding(binding))) return settings;
  if (options?.binding === undefined) return undefined;
  throw new TypeError(`Subscriptions option relays.binding: no Durable Object binding "${binding}" in env. Export FanOutRelay from your Worker `
    + `(export { FanOutRelay } from 'meshgate') and bind it under that name, or leave relays.binding out to fan out from this object alone.`);
}

/** How many levels of relays carry `count` subscribers. */
function levels(count: number, { sliceSize, maxChildren }: Settings): number {
  let depth = 1;
  for (let slices = Math.ceil(count / sliceSize); slices > maxChildren; slices = Math.ceil(slices / maxChildren)) depth++;
  return depth;
}

/**
 * How long a leaf relay may take: a `fanOut`'s slice at `concurrency` is that many
 * rounds of the clients' timeout (at most RELAY_MAX_ROUNDS); a notification's
 * gateways answer at once, so one timeout covers it. Plus the slack for the hops.
 */
function leafBudgetMs(kind: 'call' | 'notify', fanOut: RelayedFanOut, settings: Settings, timeoutMs: number): number {
  const rounds = kind === 'call' ? Math.min(Math.ceil(Math.min(settings.sliceSize, fanOut.targets.length) / fanOut.concurrency), RELAY_MAX_ROUNDS) : 1;
  return rounds * timeoutMs + RELAY_SLACK_MS;
}

/**
 * Relays are named by the hex SHA-256 of their topic object's identity, so no two
 * objects share one (a child adds `.{i}`, which no hex name can contain) and no
 * instance name, however long or dotted, reaches a relay's name.
 */
async function sha256Hex(who: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(who));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

export interface RelayedFanOut {
  targets: string[];
  method: string;
  args: readonly unknown[];
  gateway: string;
  timeoutMs: number | undefined;
  concurrency: number;
}

export class Relays {
  readonly #mesh: MeshApi;
  readonly #settings: Settings | undefined;
  /** The relays' name, for the identity it was made from (a node may learn its instance name only with its first call). */
  #name: { who: string; name: Promise<string> } | undefined;

  constructor(mesh: MeshApi, options: RelayOptions | false | undefined) {
    this.#mesh = mesh;
    this.#settings = settingsOf(mesh, options);
  }

  /** Whether a fan-out to `count` subscribers goes through relays. */
  carries(count: number): boolean {
    return this.#settings !== undefined && count >= this.#settings.minSubscribers;
  }

  /** `fanOut` through relays: each subscriber's outcome, classified from its gateway's answer as the loop classifies it. */
  async callAll<R>(fanOut: RelayedFanOut): Promise<SubscriberOutcome<R>[]> {
    const answers = await this.#run('call', fanOut);
    return Promise.all(answers.map((answer, i) => callOne(fanOut.targets[i]!, async () => {
      const settled = answer.ok ? { ok: true as const, result: answer.result ?? '' } : answer;
      return this.#mesh.settleClientAnswer(fanOut.targets[i]!, fanOut.method, settled) as R;
    })));
  }

  /** `notify` through relays, the same way. */
  async notifyAll(fanOut: RelayedFanOut): Promise<NotifyOutcome[]> {
    const answers = await this.#run('notify', fanOut);
    return Promise.all(answers.map((answer, i) => notifyOne(fanOut.targets[i]!, async () => {
      if (!answer.ok) throw decodeValue(answer.error);
      return answer.queued ? 'queued' : 'sent';
    })));
  }

  #relayName(): Promise<string> {
    const self = this.#mesh.self;
    const who = JSON.stringify(self.kind === 'node' ? ['node', self.binding, self.instance ?? null] : ['client', self.gateway, self.instance]);
    if (this.#name?.who !== who) this.#name = { who, name: sha256Hex(who) };
    return this.#name.name;
  }

  /** Hands the fan-out to the relays; one answer per target, in order, every one in by the relays' deadline (leafBudgetMs plus 1 s a level). */
  async #run(kind: 'call' | 'notify', fanOut: RelayedFanOut): Promise<RelayedAnswer[]> {
    const settings = this.#settings!;
    if (!Number.isInteger(fanOut.concurrency) || fanOut.concurrency < 1) throw new RangeError(`Fan-out concurrency must be a whole number ≥ 1, got ${fanOut.concurrency}.`);
    if (fanOut.timeoutMs !== undefined && !isDurationMs(fanOut.timeoutMs)) {
      throw new RangeError(`Subscriptions: timeoutMs must be a positive number of milliseconds, got ${String(fanOut.timeoutMs)}.`);
    }
    const timeoutMs = fanOut.timeoutMs ?? DEFAULTS.clientResponseTimeoutMs;
    const job: RelayJob = {
      kind, relay: settings.binding, gateway: fanOut.gateway,
      name: await this.#relayName(),
      targets: fanOut.targets, method: fanOut.method, args: encodeValue(fanOut.args),
      context: this.#mesh.clientCallContext(true),
      ...(fanOut.timeoutMs === undefined ? {} : { timeoutMs: fanOut.timeoutMs }),
      concurrency: fanOut.concurrency, sliceSize: settings.sliceSize, maxChildren: settings.maxChildren,
      budgetMs: leafBudgetMs(kind, fanOut, settings, timeoutMs) + levels(fanOut.targets.length, settings) * RELAY_HOP_MARGIN_MS,
      answerChars: RELAYED_ANSWER_CHARS,
    };
    // The top of the tree only calls relays: their binding is all of env it needs.
    const answers = await throughChildren({ [settings.binding]: this.#mesh.binding(settings.binding) }, job);
    if (isAnswerList(answers, job.targets.length, job.answerChars)) return answers;
    const reason = failure(new FanOutRelayError(`The fan-out relays answered no list of one outcome per subscriber; the fan-out's ${job.targets.length} subscribers may or may not have been reached, and stay subscribed.`, 'relay_failed'));
    return job.targets.map(() => reason);
  }
}
