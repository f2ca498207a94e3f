/**
 * Fan-out relays: stateless Durable Objects that carry one fan-out to a slice
 * of a large topic's subscribers, so the topic's object sends one RPC per
 * relay instead of one per subscriber. A relay given more than a slice splits
 * it among child relays (a tree); a relay given a slice calls each
 * subscriber's gateway, exactly as the topic object would, and answers every
 * gateway's answer, in order. It stores nothing and holds nothing once it has
 * answered; it answers by its deadline whatever its gateways or children do.
 *
 * The payload is encoded once, by the topic object; relays pass the string on.
 */
import { DurableObject } from 'cloudflare:workers';
import { MeshError } from '../protocol/errors.js';
import { DEFAULTS } from '../protocol/limits.js';
import { failure } from '../protocol/failure.js';
import { isNamespace } from '../bindings/kinds.js';
import type { CallContext, ClientCallEnvelope } from '../nodes/envelope.js';
import { gatewayOf } from '../nodes/mesh-api.js';
import { mapConcurrent } from './fan-out.js';
import { AnswerShares, FanOutRelayError, isAnswerList, type RelayedAnswer } from './relay-answers.js';

export type { RelayedAnswer } from './relay-answers.js';

/** One fan-out, or the part of one a relay carries. */
export interface RelayJob {
  kind: 'call' | 'notify';
  /** the relay binding, for child relays */
  relay: string;
  /** the gateway binding the subscribers connect through */
  gateway: string;
  /** this part's relay name (a hex hash of the topic object, relays.ts); its children are `${name}.${i}` */
  name: string;
  /** instance names, in subscription order */
  targets: string[];
  method: string;
  /** codec string of the argument array, encoded once */
  args: string;
  /** what each client sees as the call's origin and chain: the topic object's */
  context: CallContext;
  timeoutMs?: number;
  /** gateway calls in flight at once in one relay */
  concurrency: number;
  /** most subscribers one relay calls itself */
  sliceSize: number;
  /** most child relays one relay (or the topic object) calls */
  maxChildren: number;
  /** answer within this many ms of receiving the job (a leaf: enough for its slice at `concurrency`; see relays.ts) */
  budgetMs: number;
  /** characters of answers (results and errors) this part may carry back */
  answerChars: number;
}

interface RelayStub {
  __meshgateRelay(job: RelayJob): Promise<RelayedAnswer[]>;
}

/** How much sooner than its parent a child relay must answer: the hop back, with room to spare on a loaded machine. */
export const RELAY_HOP_MARGIN_MS = 1_000;

/** The Durable Object an app exports (`export { FanOutRelay } from 'meshgate'`) and binds as `FANOUT_RELAY`. */
export class FanOutRelay extends DurableObject {
  /** Internal RPC entry from a topic's object or a parent relay; not reachable by clients (no `__meshgateCall`). */
  async __meshgateRelay(job: RelayJob): Promise<RelayedAnswer[]> {
    checkJob(job);
    return relay(this.env, job);
  }
}

/** Carries `job`: to its slice directly when it is one, otherwise through child relays. */
export async function relay(env: unknown, job: RelayJob): Promise<RelayedAnswer[]> {
  return job.targets.length <= job.sliceSize ? reachSlice(env, job) : throughChildren(env, job);
}

/** Splits the targets among at most `maxChildren` child relays, each a whole number of slices, and joins their answers in order. */
export async function throughChildren(env: unknown, job: RelayJob): Promise<RelayedAnswer[]> {
  const slices = Math.ceil(job.targets.length / job.sliceSize);
  const groupSize = job.sliceSize * Math.ceil(slices / job.maxChildren);
  const groups: string[][] = [];
  for (let i = 0; i < job.targets.length; i += groupSize) groups.push(job.targets.slice(i, i + groupSize));
  const namespace = (env as Record<string, unknown>)[job.relay];
  if (!isNamespace(namespace)) throw new TypeError(`No Durable Object binding "${job.relay}" for the fan-out relays in env.`);
  const budgetMs = job.budgetMs - RELAY_HOP_MARGIN_MS;
  const parts = await Promise.all(groups.map(async (targets, i) => {
    const name = `${job.name}.${i}`;
    const child: RelayJob = { ...job, name, targets, budgetMs, answerChars: Math.floor(job.answerChars * (targets.length / job.targets.length)) };
    // Whatever goes wrong below, it is the relays' doing: the slice is failed (kept subscribed, no timeout counted), never called twice.
    const relayed = (code: 'relay_late' | 'relay_failed', what: string) => {
      const reason = failure(new FanOutRelayError(`The fan-out relay "${name.slice(0, 200)}" ${what}; its ${targets.length} subscribers may or may not have been reached. `
        + 'They stay subscribed and get the next fan-out; nothing was retried.', code));
      return targets.map(() => reason);
    };
    try {
      const stub = namespace.get(namespace.idFromName(name)) as RelayStub;
      const answers = await withinMs(stub.__meshgateRelay(child), job.budgetMs);
      if (answers === undefined) return relayed('relay_late', `did not answer within ${job.budgetMs} ms`);
      if (!isAnswerList(answers, targets.length, child.answerChars)) return relayed('relay_failed', 'answered no list of one well-formed outcome per subscriber');
      return answers;
    } catch (error) {
      return relayed('relay_failed', `failed (${describe(error)})`);
    }
  }));
  return parts.flat();
}

/**
 * Calls every target's gateway, `concurrency` at a time, each answer fitted as
 * it arrives. A call is started only while its answer can still come before
 * the deadline; a target not called, or not answered, by then is failed as
 * the relay's doing (its gateway never said it timed out).
 */
async function reachSlice(env: unknown, job: RelayJob): Promise<RelayedAnswer[]> {
  const deadline = Date.now() + job.budgetMs;
  const answerMs = (job.kind === 'call' ? job.timeoutMs ?? DEFAULTS.clientResponseTimeoutMs : 0) + RELAY_HOP_MARGIN_MS;
  const answers = new Array<RelayedAnswer | undefined>(job.targets.length).fill(undefined);
  const called = new Array<boolean>(job.targets.length).fill(false);
  const shares = new AnswerShares(job.answerChars, job.targets.length);
  let over = false;
  const work = mapConcurrent(job.targets.map((_, i) => i), job.concurrency, async (i) => {
    if (over || Date.now() + answerMs > deadline) return;
    called[i] = true;
    const answer = await reachOne(env, job, job.targets[i]!);
    if (!over) answers[i] = shares.fit(answer);
  });
  if ((await withinMs(work, job.budgetMs)) === undefined) over = true;
  // Every place filled: a hole would be skipped by map and dropped by flat, shifting later outcomes onto other subscribers.
  return Array.from(answers, (answer, i) => answer ?? unreached(job, i, called[i]!));
}

function unreached(job: RelayJob, i: number, called: boolean): RelayedAnswer {
  const name = job.targets[i]!;
  const who = `Client "${name.slice(0, 200)}"`;
  return failure(called
    ? new FanOutRelayError(`${who} was called by a fan-out relay but its gateway had not answered by the relay's deadline (${job.budgetMs} ms); it may have run the method. `
      + 'It stays subscribed; no timeout is counted against it.', 'relay_unanswered', name)
    : new FanOutRelayError(`${who} was not called: its fan-out relay's deadline (${job.budgetMs} ms) came first, the subscribers before it in its slice holding `
      + `all ${job.concurrency} call slots until their timeouts. It stays subscribed and gets the next fan-out; raise concurrency or lower relays.sliceSize.`, 'relay_not_reached', name));
}

async function reachOne(env: unknown, job: RelayJob, instanceName: string): Promise<RelayedAnswer> {
  const envelope: ClientCallEnvelope = {
    instanceName, method: job.method, args: job.args, context: job.context, ...(job.timeoutMs === undefined ? {} : { timeoutMs: job.timeoutMs }),
  };
  try {
    const gateway = gatewayOf(env, instanceName, job.gateway, 'the Subscriptions options');
    if (job.kind === 'notify') {
      const receipt = await gateway.__meshgateNotifyClient(envelope);
      return receipt.ok ? { ok: true, queued: receipt.queued } : { ok: false, error: receipt.error };
    }
    const answer = await gateway.__meshgateCallClient(envelope);
    if (!answer.ok) return { ok: false, error: answer.error };
    if (answer.stream) {
      void answer.stream.cancel().catch(() => undefined);
      return failure(new MeshError(`Client "${instanceName}" answered the fan-out with a stream, which a relay cannot carry back; answer a fan-out with a value.`, 'relay_stream'));
    }
    return { ok: true, result: answer.result };
  } catch (error) {
    return failure(error);
  }
}

/** Resolves with `work`'s value, or undefined once `ms` have passed; the timer never outlives the race. */
async function withinMs<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: number | undefined;
  try {
    return await Promise.race([work, new Promise<undefined>((resolve) => { timer = setTimeout(resolve, Math.max(ms, 0)) as unknown as number; })]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(error: unknown): string {
  return String((error as Error)?.message ?? error).slice(0, 300);
}

/** A job comes from our own code over RPC; still, a malformed one is refused before any gateway is called. */
function checkJob(job: RelayJob): void {
  const whole = (n: unknown, min: number) => Number.isInteger(n) && (n as number) >= min;
  const ok = typeof job === 'object' && job !== null && (job.kind === 'call' || job.kind === 'notify') && Array.isArray(job.targets)
    && job.targets.every((t) => typeof t === 'string') && typeof job.args === 'string' && typeof job.method === 'string'
    && typeof job.gateway === 'string' && typeof job.relay === 'string' && typeof job.name === 'string'
    && whole(job.concurrency, 1) && whole(job.sliceSize, 1) && whole(job.maxChildren, 2) && typeof job.budgetMs === 'number' && whole(job.answerChars, 0);
  if (!ok) throw new TypeError('FanOutRelay: not a fan-out job (relays are called by Subscriptions only).');
}
