/**
 * Stand-in gateways: Durable Objects that take a notification, count it and
 * answer at once — a gateway without a socket or a client, so a fan-out
 * reaches tens of thousands of subscribers on one machine.
 *
 * They live in the bench's workerd (STANDIN) and, for the hot-object
 * scenario, in a second workerd process (bench/remote-worker.ts), reached
 * over a cross-process RPC binding (REMOTE). There the topic object's
 * process does only the topic's work, as on Cloudflare, where every gateway
 * runs on a thread of its own.
 */
import { DurableObject } from 'cloudflare:workers';
import { FanOutRelay } from '../src/index.js';

/**
 * Local workerd runs out of SQLite memory past a few thousand objects, so the
 * simulation's stand-in names share STAND_IN_OBJECTS objects: every
 * notification is still its own RPC to a stand-in, as to a gateway.
 */
const STAND_IN_OBJECTS = 500;

export interface StandInEnv {
  STANDIN: DurableObjectNamespace;
  /** the second process's RemoteStandIns entrypoint (bench/remote-worker.ts), when the bench bound one */
  REMOTE?: RemoteStandInsService;
}

/** What the second process serves: a stand-in's notification, and a relay's job, each by the name the topic addressed. */
export interface RemoteStandInsService {
  notify(instanceName: string, envelope: unknown): Promise<{ ok: true; queued: boolean }>;
  relay(relayName: string, job: unknown): Promise<unknown[]>;
}

/** What the library needs of a Durable Object namespace (idFromName, get), tagged as the real ones are. */
function namespaceOf<Id>(idFromName: (name: string) => Id, get: (id: Id) => unknown): DurableObjectNamespace {
  return { [Symbol.toStringTag]: 'DurableObjectNamespace', idFromName, get } as unknown as DurableObjectNamespace;
}

/** env with STANDIN pooled; and, if the second process is bound, REMOTE_STANDIN and REMOTE_RELAY reaching its stand-ins and relays by name. */
export function withStandIns<E extends StandInEnv>(env: E): E {
  const real = env.STANDIN;
  const pooled = namespaceOf((name) => real.idFromName(`pool${Number(/^standin(\d+)\./.exec(name)?.[1] ?? 0) % STAND_IN_OBJECTS}`), (id) => real.get(id));
  const remote = env.REMOTE;
  if (!remote) return { ...env, STANDIN: pooled };
  const byName = (name: string): string => name;
  return {
    ...env,
    STANDIN: pooled,
    REMOTE_STANDIN: namespaceOf(byName, (name) => ({ __meshgateNotifyClient: (envelope: unknown) => remote.notify(name, envelope) })),
    REMOTE_RELAY: namespaceOf(byName, (name) => ({ __meshgateRelay: (job: unknown) => remote.relay(name, job) })),
  };
}

export class StandInGateway extends DurableObject {
  #received = 0;

  async __meshgateNotifyClient(_envelope?: unknown): Promise<{ ok: true; queued: boolean }> {
    this.#received++;
    return { ok: true, queued: false };
  }

  received(): number {
    return this.#received;
  }
}

/**
 * The library's relay, reaching the stand-ins through the same pool. In the
 * second process it reaches that process's own stand-ins under the binding
 * name the topic's job carries (REMOTE_STANDIN).
 */
export class BenchRelay extends FanOutRelay {
  constructor(ctx: DurableObjectState, env: StandInEnv) {
    const withPool = withStandIns(env) as StandInEnv & { REMOTE_STANDIN?: DurableObjectNamespace };
    super(ctx, { ...withPool, REMOTE_STANDIN: withPool.REMOTE_STANDIN ?? withPool.STANDIN });
  }
}
