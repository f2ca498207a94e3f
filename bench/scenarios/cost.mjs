/**
 * What a deployment pays for, measured by eviction timing: how long each
 * Durable Object stays in memory per isolated call, per fan-out and per idle
 * connection, beside a raw hibernatable-socket DO doing the same in the same
 * run. An object's in-memory time is from the start of the work to the moment
 * workerd evicts it (scripts/eviction.mjs). Cloudflare bills none of the idle
 * window before eviction while the object is eligible for hibernation, so the
 * billable part is the in-memory time minus the raw DO's idle window.
 *
 * Every measurement runs at once on its own mesh, so the whole scenario waits
 * for one eviction (~12 s).
 */
import { EvictionWatcher } from '../../scripts/eviction.mjs';
import { round, within } from '../lib.mjs';

const FANOUT_SUBSCRIBERS = 10;
/** The idle client pings this often while the gateway should hibernate (the default is 30 s). */
const IDLE_HEARTBEAT_MS = 1_000;
const EVICTION_WAIT_MS = 40_000;

const seconds = (ms) => round(ms / 1000, 2);

/** Runs on a mesh of its own, after the other scenarios: it waits for evictions, which work elsewhere would delay. */
export async function cost({ startMesh }) {
  const mesh = await startMesh({ identityLimiter: false });
  const watcher = EvictionWatcher.forThisProcess();
  /** Seconds from `startedAt` until each object leaves memory, and the idle window after `endedAt`. */
  const inMemory = async (objects, startedAt, endedAt) => {
    const evicted = await Promise.all(objects.map(async ([binding, name]) => watcher.evicted(await mesh.idOf(binding, name), EVICTION_WAIT_MS)));
    return { objects: objects.length, seconds: seconds(evicted.reduce((sum, at) => sum + (at - startedAt), 0)), idleAfterSeconds: seconds(Math.max(...evicted) - endedAt) };
  };
  const client = (sub, options = {}) => mesh.connect(sub, { callTimeoutMs: 30_000, ...options });
  const raw = (name) => mesh.rawSocket(name);

  try {
    const rawCall = (async () => {
      const socket = await raw('cost-raw-call');
      const t = Date.now();
      await socket.request('x'.repeat(100));
      return inMemory([['RAW', 'cost-raw-call']], t, Date.now());
    })();

    const rawIdle = (async () => {
      const t = Date.now();
      await raw('cost-raw-idle');
      return inMemory([['RAW', 'cost-raw-idle']], t, Date.now());
    })();

    const rawFanOut = (async () => {
      const name = 'cost-raw-fan';
      const fans = await Promise.all(Array.from({ length: FANOUT_SUBSCRIBERS }, () => raw(name)));
      for (const s of fans) s.onText = (text) => text.startsWith('!f:') && s.send('!ack');
      const driver = await raw(name);
      const t = Date.now();
      await within(driver.request('!fan:1'), 10_000, 'raw fan-out');
      return inMemory([['RAW', name]], t, Date.now());
    })();

    const meshCall = (async () => {
      const c = await client('cost-call');
      const t = Date.now();
      await c.node('BENCH', 'cost-call').echo('x'.repeat(40));
      const m = await inMemory([['GATEWAY', c.instanceName], ['BENCH', 'cost-call']], t, Date.now());
      return m;
    })();

    const meshIdle = (async () => {
      // Heartbeats keep going: the runtime answers them without waking the gateway.
      const t = Date.now();
      const c = await client('cost-idle', { heartbeatIntervalMs: IDLE_HEARTBEAT_MS });
      return inMemory([['GATEWAY', c.instanceName]], t, Date.now());
    })();

    const meshFanOut = (async () => {
      const subscribers = await Promise.all(Array.from({ length: FANOUT_SUBSCRIBERS }, (_, i) => client(`cost-fan${i}`, { handlers: { notify: (r) => r } })));
      for (const c of subscribers) await c.node('TOPIC', 'cost-topic').join('room');
      const t = Date.now();
      const outcome = await within(subscribers[0].node('TOPIC', 'cost-topic').broadcast('room', 1), 10_000, 'fan-out');
      if (outcome.delivered !== FANOUT_SUBSCRIBERS) throw new Error(`fan-out delivered ${outcome.delivered} of ${FANOUT_SUBSCRIBERS}`);
      return inMemory([['TOPIC', 'cost-topic'], ...subscribers.map((c) => ['GATEWAY', c.instanceName])], t, Date.now());
    })();

    const [rc, ri, rf, mc, mi, fo] = await Promise.all([rawCall, rawIdle, rawFanOut, meshCall, meshIdle, meshFanOut]);
    const window = rc.idleAfterSeconds;
    const billable = (m) => round(Math.max(0, m.seconds - m.objects * window), 2);
    return {
      scenario: 'cost', unit: 's',
      what: 'Durable Object in-memory seconds (work start → eviction, summed over the objects involved), measured by eviction timing; billable ≈ in-memory − the raw DO\'s idle window per object (Cloudflare bills no idle time while an object can hibernate)',
      idleWindowSeconds: window,
      measured: {
        call: { ...mc, billableSeconds: billable(mc) },
        fanOut: { subscribers: FANOUT_SUBSCRIBERS, ...fo, billableSeconds: billable(fo) },
        idleConnection: { heartbeatMs: IDLE_HEARTBEAT_MS, ...mi, billableSeconds: billable(mi), note: 'once per connection: heartbeats do not wake the gateway, so an idle hour costs no more' },
      },
      baseline: {
        name: 'raw hibernatable-socket DO',
        call: { ...rc, billableSeconds: billable(rc) },
        fanOut: { subscribers: FANOUT_SUBSCRIBERS, ...rf, billableSeconds: billable(rf) },
        idleConnection: { ...ri, billableSeconds: billable(ri) },
      },
    };
  } finally {
    await mesh.dispose();
  }
}
