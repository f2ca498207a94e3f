/** The Subscriptions helper on real workerd, with real MeshClients over real sockets. */
import { describe, expect, it } from 'vitest';
import { callOne, mapConcurrent } from '../src/subscriptions/fan-out.js';
import { createNetwork, waitFor } from './support/network.js';
import { useSubscriptionsMesh, type KvTopic, type Topic } from './support/subscriptions-mesh.js';

const GRACE_MS = 500;
const { client } = useSubscriptionsMesh({ GRACE_MS: String(GRACE_MS) });

describe('Subscriptions on workerd', () => {
  it('subscribe, unsubscribe and list; the list lives in SQLite and survives a restart', async () => {
    const ann = await client('ann');
    const topic = ann.node<Topic>('TOPIC', 'lists');
    expect(await topic.join('news')).toBe(ann.instanceName);
    expect(await topic.join('news')).toBe(ann.instanceName); // idempotent
    expect(await topic.add('news', 'zed.tab1')).toBe(true);
    expect(await topic.add('news', 'zed.tab1')).toBe(false);
    expect(await topic.add('sport', 'zed.tab1')).toBe(true);
    expect(await topic.list('news')).toEqual([ann.instanceName, 'zed.tab1']);
    expect(await topic.topicsOf('zed.tab1')).toEqual(['news', 'sport']);

    const before = await topic.boot();
    await expect(topic.restart()).rejects.toThrow(/test restart/); // the aborted call fails with the abort reason
    // Read through another client's gateway: ann's gateway still holds the stub the restart broke, and this reads the topic's storage, not stub recovery.
    const bob = await client('bob');
    const fresh = bob.node<Topic>('TOPIC', 'lists');
    expect(await fresh.boot()).not.toBe(before);
    expect(await fresh.list('news')).toEqual([ann.instanceName, 'zed.tab1']);

    expect(await fresh.join('news')).toBe(bob.instanceName);
    expect(await fresh.leave('news')).toBe(bob.instanceName);
    expect(await fresh.remove('news', 'zed.tab1')).toBe(true);
    expect(await fresh.list('news')).toEqual([ann.instanceName]);
    expect(await fresh.list('sport')).toEqual(['zed.tab1']);
  });

  it('one client is subscribed to at most maxTopicsPerClient topics of a set (256); leaving one frees its place', async () => {
    const roamer = await client('roamer');
    const topic = roamer.node<Topic>('TOPIC', 'sprawl');
    await Promise.all(Array.from({ length: 256 }, (_, i) => topic.join(`t${i}`)));
    await expect(topic.join('t256')).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'maxTopicsPerClient', max: 256 });
    expect(await topic.list('t256')).toEqual([]);
    expect(await topic.join('t0')).toBe(roamer.instanceName); // one it has: subscribing again is no new topic
    await topic.leave('t0');
    expect(await topic.join('t256')).toBe(roamer.instanceName);
    expect(await topic.topicsOf(roamer.instanceName!)).toHaveLength(256);
  });

  it('fans a call out to every subscriber in a new chain and reports each outcome', async () => {
    const got: string[] = [];
    const make = (name: string) => client(name, { notify: (t: string, payload: string) => (got.push(`${name}:${t}:${payload}`), `${name} ok`) });
    const [a, b, c] = await Promise.all([make('fa'), make('fb'), make('fc')]);
    const room = a.node<Topic>('TOPIC', 'fan');
    for (const x of [a, b, c]) await x.node<Topic>('TOPIC', 'fan').join('room');

    // Started inside client a's call: without ownChain the clients would refuse a call whose origin is a client.
    const summary = await room.broadcast('room', 'hello');
    expect(summary).toMatchObject({ topic: 'room', method: 'notify', total: 3, delivered: 3, dropped: [], timedOut: [], failed: [] });
    expect(summary.outcomes.map((o) => [o.instanceName, o.status, o.value])).toEqual([
      [a.instanceName, 'delivered', 'fa ok'], [b.instanceName, 'delivered', 'fb ok'], [c.instanceName, 'delivered', 'fc ok'],
    ]);
    expect(got.sort()).toEqual(['fa:room:hello', 'fb:room:hello', 'fc:room:hello']);

    const skipped = await room.broadcast('room', 'not to a', { except: [a.instanceName!] });
    expect(skipped.total).toBe(2);
    expect(skipped.outcomes.map((o) => o.instanceName)).toEqual([b.instanceName, c.instanceName]);
  });

  it('a subscriber that answers with a stream is a failure of its own; the others are delivered and its stream is stopped', async () => {
    const honest = await client('str-honest', { notify: (_topic: string, payload: unknown) => `got ${String(payload)}` });
    let stopped!: () => void;
    const streamStopped = new Promise<void>((resolve) => (stopped = resolve));
    const streamer = await client('str-streamer', {
      // A ReadableStream hears the cancel even before anything was pulled from it.
      notify: () => new ReadableStream({ pull: (controller) => controller.enqueue(1), cancel: () => stopped() }),
    });
    const topic = honest.node<Topic>('TOPIC', 'stream-answers');
    await topic.join('news');
    await streamer.node<Topic>('TOPIC', 'stream-answers').join('news');
    const summary = await topic.broadcast('news', 'hi');
    expect(summary.delivered).toBe(1);
    expect(summary.outcomes).toEqual([
      { instanceName: honest.instanceName, status: 'delivered', value: 'got hi' },
      expect.objectContaining({ instanceName: streamer.instanceName, status: 'failed', errorName: 'ProtocolError' }),
    ]);
    await streamStopped;
    expect(await topic.list('news')).toHaveLength(2); // a failure keeps it subscribed
  });

  it('one slow client holds up nobody, and its timeout keeps it subscribed', async () => {
    const n = 6;
    let arrived = 0;
    let release!: () => void;
    const allArrived = new Promise<void>((resolve) => (release = resolve));
    // Each fast handler answers only once all of them have started: a serial fan-out would deadlock into timeouts.
    const barrier = { notify: async () => { if (++arrived === n) release(); await allArrived; return 'ok'; } };
    const fast = await Promise.all(Array.from({ length: n }, (_, i) => client(`fast${i}`, barrier)));
    const slow = await client('slow', { notify: () => new Promise(() => {}) });
    for (const x of [slow, ...fast]) await x.node<Topic>('TOPIC', 'slow').join('t'); // the slow one first in line

    const started = Date.now();
    const summary = await slow.node<Topic>('TOPIC', 'slow').broadcast('t', 'x', { timeoutMs: 1500 });
    expect(summary.delivered).toBe(n);
    expect(summary.timedOut).toEqual([slow.instanceName]);
    expect(summary.outcomes[0]).toMatchObject({ status: 'timeout', errorName: 'ClientTimeoutError' });
    expect(summary.dropped).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000); // one timeout, not one per client
    expect(await slow.node<Topic>('TOPIC', 'slow').list('t')).toContain(slow.instanceName);
  });

  it('fans out to 200 real clients while one of them never answers', async () => {
    const n = 200;
    const arrivals: number[] = [];
    const fast = await Promise.all(Array.from({ length: n }, (_, i) => client(`many${i}`, { notify: () => arrivals.push(Date.now()) })));
    const stuck = await client('stuck', { notify: () => new Promise(() => {}) });
    await stuck.node<Topic>('TOPIC', 'many').join('t'); // first in line
    await Promise.all(fast.map((x) => x.node<Topic>('TOPIC', 'many').join('t')));
    const started = Date.now();
    const summary = await stuck.node<Topic>('TOPIC', 'many').broadcast('t', 'x', { timeoutMs: 3000 });
    expect(summary.total).toBe(n + 1);
    expect(summary.delivered).toBe(n);
    expect(summary.timedOut).toEqual([stuck.instanceName]);
    expect(arrivals).toHaveLength(n);
    // Everyone behind the stuck client got the call before its 3 s timeout even fired.
    expect(Math.max(...arrivals) - started).toBeLessThan(3000);
    for (const x of [...fast, stuck]) x.disconnect();
  }, 60_000);

  it('never runs more calls at once than the concurrency bound', async () => {
    let running = 0;
    let peak = 0;
    // A short stand-in for work, so calls overlap when the pool allows it.
    const handlers = { notify: async () => { peak = Math.max(peak, ++running); await new Promise((r) => setTimeout(r, 40)); running--; return 'ok'; } };
    const xs = await Promise.all(Array.from({ length: 6 }, (_, i) => client(`bound${i}`, handlers)));
    for (const x of xs) await x.node<Topic>('TOPIC', 'bound').join('t');
    const summary = await xs[0]!.node<Topic>('TOPIC', 'bound').broadcast('t', 'x', { concurrency: 2 });
    expect(summary.delivered).toBe(6);
    expect(peak).toBe(2);
  });

  it('drops a subscriber only on ClientDisconnectedError, from every topic; failures and timeouts stay', async () => {
    const live = await client('live', { notify: () => 'ok' });
    const thrower = await client('thrower', { notify: () => { throw new RangeError('handler broke'); } });
    const leaver = await client('leaver', { notify: () => 'ok' });
    const topic = live.node<Topic>('TOPIC', 'drops');
    for (const x of [live, thrower, leaver]) await x.node<Topic>('TOPIC', 'drops').join('t');
    await topic.add('t', 'ghost.never'); // a gateway that never had a socket
    await topic.add('other', 'ghost.never');
    await leaver.node<Topic>('TOPIC', 'drops').join('other');
    const leaverName = leaver.instanceName!;
    leaver.disconnect(); // its gateway waits GRACE_MS, then calls to it fail for good

    const summary = await topic.broadcast('t', 'x');
    const byName = Object.fromEntries(summary.outcomes.map((o) => [o.instanceName, o]));
    expect(byName[live.instanceName!]).toMatchObject({ status: 'delivered', value: 'ok' });
    expect(byName[thrower.instanceName!]).toMatchObject({ status: 'failed', errorName: 'RangeError' });
    expect(byName['ghost.never']).toMatchObject({ status: 'dropped', errorName: 'ClientDisconnectedError' });
    expect(byName[leaverName]).toMatchObject({ status: 'dropped', errorName: 'ClientDisconnectedError' });
    expect(summary.dropped.sort()).toEqual(['ghost.never', leaverName].sort());
    expect((await topic.list('t')).sort()).toEqual([live.instanceName, thrower.instanceName].sort());
    expect(await topic.topicsOf('ghost.never')).toEqual([]);
    expect(await topic.topicsOf(leaverName)).toEqual([]);
  });

  it('a client in its grace period is not dropped: the call waits and is delivered after the reconnect', async () => {
    const network = createNetwork();
    const got: unknown[] = [];
    const flaky = await client('flaky', { notify: (_t: string, p: unknown) => (got.push(p), 'late but ok') }, { WebSocket: network.WebSocket });
    const sender = await client('sender');
    await flaky.node<Topic>('TOPIC', 'grace').join('t');
    network.offline = true;
    network.drop();
    await waitFor(() => flaky.state === 'reconnecting', 'the flaky client to notice the drop');
    const pending = sender.node<Topic>('TOPIC', 'grace').broadcast('t', 'while away');
    network.offline = false; // the next attempt (≤ 200 ms) lands well inside the 500 ms grace period
    const summary = await pending;
    expect(summary.outcomes).toEqual([{ instanceName: flaky.instanceName, status: 'delivered', value: 'late but ok' }]);
    expect(got).toEqual(['while away']);
    expect(await sender.node<Topic>('TOPIC', 'grace').list('t')).toEqual([flaky.instanceName]);
  });

  it('a drop never removes a subscription made after the fan-out started (resubscribe race)', async () => {
    const c = await client('racer');
    const result = await c.node<Topic>('TOPIC', 'race').dropWithOldMark('t', 'racer.tab');
    expect(result).toEqual({ droppedRows: 0, stillListed: true });
  });

  it('refuses a Durable Object without SQLite with advice on the migration', async () => {
    const c = await client('kv');
    const message = await c.node<KvTopic>('KV_TOPIC', 'x').tryCreate();
    expect(message).toMatch(/new_sqlite_classes/);
    expect(message).toMatch(/useSQLite: true/);
  });
});

describe('fan-out building blocks', () => {
  it('mapConcurrent keeps the order of the input, whatever order the tasks finish in', async () => {
    const finished: number[] = [];
    // Node 20 has no Promise.withResolvers.
    const open: Array<() => void> = [];
    const gates = [0, 1, 2, 3].map((i) => new Promise<void>((resolve) => (open[i] = resolve)));
    const run = mapConcurrent([0, 1, 2, 3], 4, async (i) => { await gates[i]; finished.push(i); return i * 10; });
    for (const i of [3, 1, 0, 2]) {
      open[i]!();
      await new Promise((r) => setImmediate(r)); // let that task finish before opening the next gate
    }
    expect(await run).toEqual([0, 10, 20, 30]);
    expect(finished).toEqual([3, 1, 0, 2]);
  });

  it('mapConcurrent refuses a concurrency that is not a whole number ≥ 1', async () => {
    await expect(mapConcurrent([1], 0, async (x) => x)).rejects.toThrow(/whole number ≥ 1, got 0/);
  });

  it('callOne classifies by error name too, so errors revived by another copy of the library count', async () => {
    const named = (name: string) => Object.assign(new Error('x'), { name });
    expect((await callOne('a.1', () => Promise.reject(named('ClientDisconnectedError')))).status).toBe('dropped');
    expect((await callOne('a.1', () => Promise.reject(named('ClientTimeoutError')))).status).toBe('timeout');
    expect((await callOne('a.1', () => Promise.reject('not an error'))).status).toBe('failed');
    expect(await callOne('a.1', async () => 7)).toEqual({ instanceName: 'a.1', status: 'delivered', value: 7 });
  });
});
