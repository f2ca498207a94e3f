/**
 * Fan-out through relay Durable Objects on real workerd: a topic past its
 * relay threshold (4 here; 512 by default) hands its fan-out to a tree of
 * FanOutRelay objects, 3 subscribers per relay and 2 children per relay, and
 * gets back the same outcomes the loop in its own object would have found.
 */
import { describe, expect, it } from 'vitest';
import type { MeshClient } from '../src/client/index.js';
import { encodeError, decodeValue } from '../src/protocol/codec.js';
import { ClientDisconnectedError } from '../src/protocol/errors.js';
import { AnswerShares, RELAYED_ERROR_CHARS, isAnswerList, type RelayedAnswer } from '../src/subscriptions/relay-answers.js';
import { waitFor } from './support/network.js';
import { useSubscriptionsMesh, type RelayJobSeen, type Topic } from './support/subscriptions-mesh.js';

const mesh = useSubscriptionsMesh();
const SLICE = 3;
const CHILDREN = 2;

/** Per client, how many times each payload arrived. */
type Arrivals = Map<string, Map<unknown, number>>;

/** `n` connected subscribers that answer at once, one that never answers, and one that never connected; all subscribed to `topic`. */
async function bigTopic(prefix: string, topic: string, n: number) {
  const arrivals: Arrivals = new Map();
  const count = (name: string, payload: unknown) => {
    const seen = arrivals.get(name) ?? new Map<unknown, number>();
    arrivals.set(name, seen.set(payload, (seen.get(payload) ?? 0) + 1));
  };
  const fast: MeshClient[] = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const c: MeshClient = await mesh.client(`${prefix}${i}`, { notify: (_t: string, payload: unknown) => { count(c.instanceName!, payload); return payload; } });
    return c;
  }));
  const slow: MeshClient = await mesh.client(`${prefix}slow`, { notify: (_t: string, payload: unknown) => { count(slow.instanceName!, payload); return new Promise(() => {}); } });
  const room = fast[0]!.node<Topic>('TOPIC', prefix);
  for (const c of [...fast, slow]) await c.node<Topic>('TOPIC', prefix).joinRelayed(topic);
  const ghost = `${prefix}ghost.tab`;
  await room.addRelayed(topic, ghost);
  await room.takeRelayJobs();
  return { arrivals, fast, slow, ghost, room };
}

/** The tree the relays formed: every leaf within a slice, every relay with at most CHILDREN children, all targets covered once by the leaves. */
function checkTree(jobs: RelayJobSeen[], total: number): number {
  const names = new Set(jobs.map((j) => j.name));
  const children = new Map<string, number>();
  for (const { name } of jobs) {
    const parent = name.slice(0, name.lastIndexOf('.'));
    children.set(parent, (children.get(parent) ?? 0) + 1);
  }
  const leaves = jobs.filter((j) => ![...names].some((other) => other.startsWith(`${j.name}.`)));
  expect(leaves.every((j) => j.targets <= SLICE)).toBe(true);
  expect(leaves.reduce((sum, j) => sum + j.targets, 0)).toBe(total);
  expect(Math.max(...children.values())).toBeLessThanOrEqual(CHILDREN);
  return Math.max(...jobs.map((j) => j.name.split('.').length - 1));
}

describe('fan-out through relays', () => {
  it('fanOut to 14 subscribers: each connected one answers exactly once, the gone one is dropped and unsubscribed, the slow one times out', async () => {
    const { arrivals, fast, slow, ghost, room } = await bigTopic('rf', 'big', 12);
    const subscribed = await room.listRelayed('big');
    expect(subscribed).toHaveLength(14);

    const summary = await room.broadcastRelayed('big', 'p1', { timeoutMs: 1_500 });
    expect(summary).toMatchObject({ total: 14, delivered: 12, dropped: [ghost], timedOut: [slow.instanceName], failed: [] });
    // One outcome per subscriber, in subscription order, each delivered one with the client's answer.
    expect(summary.outcomes.map((o) => o.instanceName)).toEqual(subscribed);
    expect(summary.outcomes.filter((o) => o.status === 'delivered').every((o) => o.value === 'p1')).toBe(true);
    expect(summary.outcomes.find((o) => o.instanceName === ghost)!.errorName).toBe('ClientDisconnectedError');
    expect(summary.outcomes.find((o) => o.instanceName === slow.instanceName)!.errorName).toBe('ClientTimeoutError');
    for (const c of fast) expect(arrivals.get(c.instanceName!)?.get('p1')).toBe(1);
    expect(arrivals.get(slow.instanceName!)?.get('p1')).toBe(1);

    // 14 subscribers, 3 per relay, 2 children per relay: three levels of relays under the topic object.
    expect(checkTree(await room.takeRelayJobs(), 14)).toBe(3);
    expect(await room.listRelayed('big')).toEqual(subscribed.filter((name) => name !== ghost));
  }, 60_000);

  it('notify to 14 subscribers: each connected one gets it once, and one sitting on an earlier notification past the timeout is skipped as a timeout', async () => {
    const { arrivals, fast, slow, ghost, room } = await bigTopic('rn', 'big', 12);
    const first = await room.announceRelayed('big', 'a1', { timeoutMs: 300 });
    expect(first).toMatchObject({ total: 14, sent: 13, queued: 0, dropped: [ghost], timedOut: [], failed: [] });
    await waitFor(() => [...fast, slow].every((c) => arrivals.get(c.instanceName!)?.get('a1') === 1), 'every connected subscriber to get a1');
    expect(checkTree(await room.takeRelayJobs(), 14)).toBe(3);

    // The slow one has not answered a1: once 300 ms have passed it is overdue (only time passing makes it so).
    await new Promise((r) => setTimeout(r, 400));
    const second = await room.announceRelayed('big', 'a2', { timeoutMs: 300 });
    expect(second).toMatchObject({ total: 13, sent: 12, dropped: [], timedOut: [slow.instanceName], failed: [] });
    await waitFor(() => fast.every((c) => arrivals.get(c.instanceName!)?.get('a2') === 1), 'every fast subscriber to get a2');
    // A later round trip on every socket: nothing of a1 or a2 arrives twice.
    await room.broadcastRelayed('big', 'p-after', { timeoutMs: 1_000, except: [slow.instanceName!] });
    for (const c of fast) expect([arrivals.get(c.instanceName!)?.get('a1'), arrivals.get(c.instanceName!)?.get('a2')]).toEqual([1, 1]);
    expect(arrivals.get(slow.instanceName!)?.has('a2')).toBe(false);
  }, 60_000);

  it('a relay that fails as a whole fails its slice, which stays subscribed; the other relays deliver', async () => {
    const { arrivals, fast, slow, room } = await bigTopic('rc', 'big', 12);
    const subscribed = await room.listRelayed('big');
    const summary = await room.broadcastRelayed('big', 'crash-first-leaf', { timeoutMs: 1_000, except: [slow.instanceName!] });
    // The first leaf carries the first slice: the first 3 subscribers.
    expect(summary.failed).toEqual(subscribed.slice(0, SLICE));
    expect(summary.outcomes.filter((o) => o.status === 'failed').every((o) => o.errorName === 'FanOutRelayError' && o.code === 'relay_failed')).toBe(true);
    expect(summary.delivered).toBe(12 - SLICE);
    for (const c of fast.slice(SLICE)) expect(arrivals.get(c.instanceName!)?.get('crash-first-leaf')).toBe(1);
    expect(await room.listRelayed('big')).toEqual(subscribed.filter((name) => !summary.dropped.includes(name)));
  }, 60_000);

  it('a slice that outlasts its relay still answers one outcome per subscriber, each on its own subscriber', async () => {
    // One call at a time: two silent subscribers hold the first slice past 7 s each; the second slice answers at once.
    const silent = await Promise.all(['rh-s1', 'rh-s2'].map((sub) => mesh.client(sub, { notify: () => new Promise(() => {}) })));
    const honest = await Promise.all(['rh-h1', 'rh-h2', 'rh-h3'].map((sub) => mesh.client(sub, { notify: (_t: string, p: unknown) => p })));
    const room = honest[0]!.node<Topic>('TOPIC', 'rh');
    for (const c of [...silent, honest[0]!, honest[1]!]) await c.node<Topic>('TOPIC', 'rh').joinRelayed('big');
    const ghost = 'rh-ghost.tab';
    await room.addRelayed('big', ghost);
    await honest[2]!.node<Topic>('TOPIC', 'rh').joinRelayed('big');
    const subscribed = await room.listRelayed('big');

    const summary = await room.broadcastRelayed('big', 'h', { timeoutMs: 7_000, concurrency: 1 });
    expect(summary.outcomes.map((o) => o.instanceName)).toEqual(subscribed);
    const status = new Map(summary.outcomes.map((o) => [o.instanceName, o]));
    // The gone one is dropped, and only it: the honest ones keep their subscription whatever their slice's relay managed.
    expect(summary.dropped).toEqual([ghost]);
    expect(status.get(ghost)!.errorName).toBe('ClientDisconnectedError');
    // Its relay waits as long as its slice takes one call at a time (3 × 7 s), as the loop in the topic's object would.
    for (const c of silent) expect(status.get(c.instanceName!)!.status).toBe('timeout');
    for (const c of honest) expect(status.get(c.instanceName!)).toMatchObject({ status: 'delivered', value: 'h' });
    expect(await room.listRelayed('big')).toEqual(subscribed.filter((name) => name !== ghost));
  }, 60_000);

  it('a subscriber its relay could not call in time is failed, not timed out: it stays subscribed however often that happens', async () => {
    const [s1, s2, ...rest] = await Promise.all(['rt-s1', 'rt-s2', 'rt-h1', 'rt-h2', 'rt-h3'].map((sub, i) =>
      mesh.client(sub, { notify: (_t: string, p: unknown) => (i < 2 ? new Promise(() => {}) : p) })));
    const room = s1!.node<Topic>('TOPIC', 'rt');
    for (const c of [s1!, s2!, ...rest]) await c.node<Topic>('TOPIC', 'rt').joinRelayed('big');
    const subscribed = await room.listRelayed('big');
    // The first leaf gets 1 s + 1.5 s for its slice, one call at a time: s1 is called and times out; s2 and h1 cannot be answered in time.
    for (const round of [1, 2, 3]) {
      const summary = await room.broadcastRelayed('big', `tight-first-leaf ${round}`, { timeoutMs: 1_000, concurrency: 1 });
      const status = new Map(summary.outcomes.map((o) => [o.instanceName, o]));
      expect(status.get(s1!.instanceName!)!.errorName).toBe('ClientTimeoutError');
      for (const name of [s2!.instanceName!, rest[0]!.instanceName!]) {
        expect(status.get(name)).toMatchObject({ status: 'failed', errorName: 'FanOutRelayError', code: 'relay_not_reached' });
      }
      expect(summary.delivered).toBe(2);
    }
    // s1 timed out three times in a row and is unsubscribed; the two its relay never called are kept.
    expect(await room.listRelayed('big')).toEqual(subscribed.filter((name) => name !== s1!.instanceName));
  }, 60_000);

  it('a relay that misses its deadline fails its slice as the relay\'s doing, not the clients\'', async () => {
    const { slow, room } = await bigTopic('rl', 'big', 6);
    const subscribed = await room.listRelayed('big');
    const summary = await room.broadcastRelayed('big', 'slow-first-leaf', { timeoutMs: 500, except: [slow.instanceName!] });
    expect(summary.failed).toEqual(subscribed.slice(0, SLICE));
    expect(summary.timedOut).toEqual([]);
    for (const o of summary.outcomes.slice(0, SLICE)) expect(o).toMatchObject({ errorName: 'FanOutRelayError', code: 'relay_late' });
    expect(summary.delivered).toBe(6 - SLICE);
  }, 60_000);

  it('each subscriber has its own share of what its relay carries back: a large answer cannot crowd out its slice-mates', async () => {
    // The first leaf may carry back 1 200 characters for its 3 subscribers; the first to answer (one call at a time) answers 1 190.
    const [big, ...rest] = await Promise.all(['rs-big', 'rs-a', 'rs-b', 'rs-c', 'rs-d'].map((sub, i) =>
      mesh.client(sub, { notify: (_t: string, p: unknown) => (i === 0 ? 'x'.repeat(1_190) : p) })));
    const room = big!.node<Topic>('TOPIC', 'rs');
    for (const c of [big!, ...rest]) await c.node<Topic>('TOPIC', 'rs').joinRelayed('big');
    const summary = await room.broadcastRelayed('big', 'small-first-leaf', { timeoutMs: 5_000, concurrency: 1 });
    expect(summary.outcomes[0]).toMatchObject({ instanceName: big!.instanceName, status: 'failed', errorName: 'LimitExceededError', limit: 'relayAnswerChars' });
    expect(summary.outcomes.slice(1).map((o) => [o.instanceName, o.status, o.value])).toEqual(rest.map((c) => [c.instanceName, 'delivered', 'small-first-leaf']));
  }, 60_000);

  it('no two topic objects share a relay, even one named like another\'s child relay', async () => {
    const xs = await Promise.all(Array.from({ length: 7 }, (_, i) => mesh.client(`rq${i}`, { notify: (_t: string, p: unknown) => p })));
    // 7 subscribers make "rq" a tree two relays deep ("….0.0" under it); "rq.0" is another object with 4.
    for (const x of xs) await x.node<Topic>('TOPIC', 'rq').joinRelayed('big');
    for (const x of xs.slice(0, 4)) await x.node<Topic>('TOPIC', 'rq.0').joinRelayed('big');
    const [a, b] = [xs[0]!.node<Topic>('TOPIC', 'rq'), xs[0]!.node<Topic>('TOPIC', 'rq.0')];
    await a.takeRelayJobs();
    expect((await a.announceRelayed('big', 'q')).sent).toBe(7);
    const underA = new Set((await a.takeRelayJobs()).map((j) => j.name));
    expect((await b.announceRelayed('big', 'q')).sent).toBe(4);
    const underB = (await b.takeRelayJobs()).map((j) => j.name);
    expect(underA.size).toBe(4); // ….0 (with ….0.0 and ….0.1) and ….1
    expect(underB).toHaveLength(2);
    expect(underB.filter((name) => underA.has(name))).toEqual([]);
    // Named from a hash of the topic object's binding and instance: no client-chosen text in a relay's name.
    for (const name of [...underA, ...underB]) expect(name).toMatch(/^[0-9a-f]{64}(\.\d+)+$/);
  }, 30_000);

  it('relays hold nothing once they answered: they and the topic object are evicted as after any other work', async () => {
    const { room } = await bigTopic('re', 'big', 4);
    const before = await room.boot();
    expect(await room.announceRelayed('big', 'x')).toMatchObject({ total: 6, sent: 5 });
    const first = new Map((await room.takeRelayJobs()).map((j) => [j.name, j.boot]));
    expect(first.size).toBeGreaterThan(1);
    // workerd evicts an object 10 s after its last event; nothing can be awaited for that, so wait it out.
    await new Promise((r) => setTimeout(r, 13_000));
    expect(await room.boot()).not.toBe(before);
    expect((await room.announceRelayed('big', 'y')).sent).toBe(5); // the gone one was dropped by the first
    const second = await room.takeRelayJobs();
    expect(second.map((j) => j.name).sort()).toEqual([...first.keys()].sort());
    for (const job of second) expect(job.boot).not.toBe(first.get(job.name));
  }, 40_000);

  it('a topic below the threshold keeps the loop in its own object', async () => {
    const xs = await Promise.all([0, 1, 2].map((i) => mesh.client(`rsmall${i}`, { notify: (_t: string, p: unknown) => p })));
    const room = xs[0]!.node<Topic>('TOPIC', 'rsmall');
    for (const x of xs) await x.node<Topic>('TOPIC', 'rsmall').joinRelayed('small');
    await room.takeRelayJobs();
    expect(await room.broadcastRelayed('small', 'hi')).toMatchObject({ total: 3, delivered: 3 });
    expect(await room.announceRelayed('small', 'hi')).toMatchObject({ total: 3, sent: 3 });
    expect(await room.takeRelayJobs()).toEqual([]);
  }, 30_000);

  it('a client cannot call a relay: it has no entry point for mesh calls', async () => {
    const x = await mesh.client('rprobe');
    await expect(x.node<{ anything(): unknown }>('FANOUT_RELAY', 'TOPIC/rprobe').anything()).rejects.toMatchObject({ name: 'UnknownBindingError' });
    expect(await x.node<Topic>('TOPIC', 'rprobe').takeRelayJobs()).toEqual([]);
  });

  it('a relay binding named in the options but not bound is refused with what to export', async () => {
    const x = await mesh.client('rmissing');
    const message = await x.node<Topic>('TOPIC', 'rmissing').tryMissingRelayBinding();
    expect(message).toMatch(/no Durable Object binding "NO_SUCH_RELAY"/);
    expect(message).toMatch(/export \{ FanOutRelay \} from 'meshgate'/);
  });
});

describe('what a relay carries back', () => {
  const refusal = (answer: RelayedAnswer) => decodeValue((answer as { error: string }).error) as Error & { limit: string };

  it('gives each subscriber its own share, carries unused shares forward, and refuses a result past both', () => {
    // 4 subscribers, 100 characters: 25 each.
    const shares = new AnswerShares(100, 4);
    const fitted = [
      shares.fit({ ok: true, result: 'x'.repeat(60) }), // past its own 25, nothing spare yet: refused, its 25 spare
      shares.fit({ ok: true, queued: true }), // nothing: 25 more spare
      shares.fit({ ok: true, result: 'y'.repeat(70) }), // 25 + 45 of the 50 spare
      shares.fit({ ok: true, result: 'z'.repeat(25) }), // its own share, whatever came before
    ];
    expect([refusal(fitted[0]!).name, refusal(fitted[0]!).limit]).toEqual(['LimitExceededError', 'relayAnswerChars']);
    expect(fitted.slice(1)).toEqual([{ ok: true, queued: true }, { ok: true, result: 'y'.repeat(70) }, { ok: true, result: 'z'.repeat(25) }]);
    // The whole slice never carries back more than its budget, and a list that does is refused by the relay above.
    expect(isAnswerList(fitted, 4, 100)).toBe(true);
    expect(isAnswerList([...fitted.slice(1), { ok: true, result: 'w'.repeat(26) }], 4, 100)).toBe(false);
  });

  it('shortens a long error keeping its name and class fields, even one whose characters encode long', () => {
    const shares = new AnswerShares(100, 2);
    const short = (shares.fit({ ok: false, error: encodeError(new ClientDisconnectedError('a.tab', 'gone '.repeat(2_000))) }) as { error: string }).error;
    expect(short.length).toBeLessThanOrEqual(RELAYED_ERROR_CHARS);
    const error = decodeValue(short) as Error & { clientInstanceName: string };
    expect([error.name, error.clientInstanceName]).toEqual(['ClientDisconnectedError', 'a.tab']);
    const escaped = (shares.fit({ ok: false, error: encodeError(new ClientDisconnectedError('\u0001'.repeat(290), '\u0001'.repeat(5_000))) }) as { error: string }).error;
    expect(escaped.length).toBeLessThanOrEqual(RELAYED_ERROR_CHARS);
    expect((decodeValue(escaped) as Error).name).toBe('ClientDisconnectedError');
  });

  it('refuses any answer list but a dense one of one well-formed outcome per subscriber', () => {
    const ok = { ok: true, result: '"a"' };
    expect(isAnswerList([ok, ok], 2, 100)).toBe(true);
    const holey = new Array(2);
    holey[1] = ok;
    for (const bad of [holey, [ok], [ok, ok, ok], [ok, null], [ok, { ok: 'yes' }], [ok, { ok: false }], [ok, { ok: true, result: 5 }], { length: 2, 0: ok, 1: ok }]) {
      expect(isAnswerList(bad, 2, 100)).toBe(false);
    }
  });
});
