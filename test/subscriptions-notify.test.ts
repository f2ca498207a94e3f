/**
 * Subscriptions.notify on real workerd: a fan-out that does not wait for its
 * subscribers' answers, so silent subscribers cannot hold a publish (or the
 * topic node's memory) hostage; and the bounds that keep them in check.
 */
import { describe, expect, it } from 'vitest';
import type { MeshClient } from '../src/client/index.js';
import { createNetwork, waitFor } from './support/network.js';
import { useSubscriptionsMesh, type Topic } from './support/subscriptions-mesh.js';

const GRACE_MS = 500;
const MAX_PENDING_NOTIFICATIONS = 8;
const mesh = useSubscriptionsMesh({ GRACE_MS: String(GRACE_MS), MAX_PENDING_NOTIFICATIONS: String(MAX_PENDING_NOTIFICATIONS) });
const { client } = mesh;

/** Handlers that take every call and never answer it. */
const silent = () => ({ notify: () => new Promise(() => {}) });
const topicOf = (c: MeshClient, instance: string) => c.node<Topic>('TOPIC', instance);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Subscriptions.notify', () => {
  it('the loop encodes the payload once per publish, not once per subscriber', async () => {
    const received: unknown[] = [];
    const handlers = { notify: (_topic: string, payload: unknown) => { received.push(payload); return 'ok'; } };
    const xs = await Promise.all(Array.from({ length: 5 }, (_, i) => client(`enc${i}`, handlers)));
    await Promise.all(xs.map((x) => topicOf(x, 'enc').join('e')));
    const counts = await topicOf(xs[0]!, 'enc').countEncodes('e');
    expect(counts).toEqual({ fanOut: 1, notify: 1, delivered: 5, sent: 5 });
    await waitFor(() => received.length === 10, 'every subscriber to get both');
    expect(received.every((p) => (p as { text?: string }).text === 'counted')).toBe(true);
  });

  it('a publish to 130 subscribers that never answer returns in well under a second, and each got the call', async () => {
    const n = 130;
    let arrived = 0;
    const handlers = { notify: () => { arrived++; return new Promise(() => {}); } };
    const xs = await Promise.all(Array.from({ length: n }, (_, i) => client(`mute${i}`, handlers)));
    await Promise.all(xs.map((x) => topicOf(x, 'mute').join('t')));
    const sender = await client('mutesender');

    const started = Date.now();
    const summary = await topicOf(sender, 'mute').announce('t', 'hello');
    const took = Date.now() - started;
    expect(summary).toMatchObject({ total: n, sent: n, queued: 0, dropped: [], timedOut: [], failed: [] });
    expect(took).toBeLessThan(1000);
    console.log(`notify to ${n} silent subscribers took ${took} ms`);
    await waitFor(() => arrived === n, 'every subscriber to receive the notification');
    // The answers nobody gives are the gateways' to remember (no timer), not the node's to wait for.
    expect(await mesh.gatewayMemory(xs[0]!.instanceName!)).toMatchObject({ notifications: 1, waiting: 0 });

    // A second publish while all of them still sit on the first: sent again (not overdue yet, 30 s default).
    const again = await topicOf(sender, 'mute').announce('t', 'again');
    expect(again.sent).toBe(n);
    for (const x of xs) x.disconnect();
  }, 60_000);

  it('the topic node is evicted after a notify to silent subscribers as after any other work (no RPC left open)', async () => {
    const xs = await Promise.all([0, 1, 2].map((i) => client(`evict${i}`, silent())));
    for (const x of xs) await topicOf(x, 'evict').join('t');
    const before = await topicOf(xs[0]!, 'evict').boot();
    expect((await topicOf(xs[0]!, 'evict').announce('t', 'x')).sent).toBe(3);
    // workerd evicts an object 10 s after its last event; nothing can be awaited for that, so wait it out.
    await pause(13_000);
    expect(await topicOf(xs[0]!, 'evict').boot()).not.toBe(before);
    for (const x of xs) x.disconnect();
  }, 30_000);

  it('a subscriber that leaves notifications unanswered past the timeout is skipped, and dropped after 3 in a row', async () => {
    const errors: unknown[] = [];
    let answered = 0;
    const good = await client('chatty', { notify: () => ++answered }, { onError: (e) => errors.push(e) });
    const mute = await client('quiet', silent());
    const topic = topicOf(good, 'streak');
    for (const x of [good, mute]) await topicOf(x, 'streak').join('t');
    const options = { timeoutMs: 200 };

    expect((await topic.announce('t', 1, options)).sent).toBe(2);
    await waitFor(() => answered === 1, 'the good subscriber to answer');
    await pause(300); // the silent one is now overdue: only time passing makes it so
    const statuses: string[] = [];
    for (let i = 2; i <= 4; i++) {
      const summary = await topic.announce('t', i, options);
      const byName = Object.fromEntries(summary.outcomes.map((o) => [o.instanceName, o]));
      expect(byName[good.instanceName!]!.status).toBe('sent');
      statuses.push(byName[mute.instanceName!]!.status);
      expect(byName[mute.instanceName!]!.errorName).toBe('ClientTimeoutError');
      await waitFor(() => answered === i, 'the good subscriber to answer');
    }
    expect(statuses).toEqual(['timeout', 'timeout', 'dropped']);
    expect(await topic.list('t')).toEqual([good.instanceName]);
    // The good subscriber's answers are taken quietly: no "unknown call id" reports.
    expect(errors).toEqual([]);
    expect(await mesh.gatewayMemory(good.instanceName!)).toMatchObject({ notifications: 0 });
  });

  it('fanOut drops a subscriber after 3 timeouts in a row; an answer in between ends the streak', async () => {
    const hangs = { notify: (_t: string, payload: string) => (payload === 'hang' ? new Promise(() => {}) : 'ok') };
    const c = await client('streaky', hangs);
    const topic = topicOf(c, 'fanstreak');
    await topic.join('t');
    const status = async (payload: string) => (await topic.broadcast('t', payload, { timeoutMs: 200 })).outcomes[0]!.status;
    expect([await status('hang'), await status('hang'), await status('ok')]).toEqual(['timeout', 'timeout', 'delivered']);
    expect([await status('hang'), await status('hang')]).toEqual(['timeout', 'timeout']);
    expect(await topic.list('t')).toEqual([c.instanceName]);
    await topic.join('t'); // subscribing again does not restart the streak
    const last = await topic.broadcast('t', 'hang', { timeoutMs: 200 });
    expect(last.outcomes).toEqual([{ instanceName: c.instanceName, status: 'dropped', errorName: 'ClientTimeoutError' }]);
    expect(last.dropped).toEqual([c.instanceName]);
    expect(await topic.list('t')).toEqual([]);
  });

  it('drops subscribers that are gone, queues for one in its grace period and delivers after its reconnect', async () => {
    const network = createNetwork();
    const got: unknown[] = [];
    const flaky = await client('nflaky', { notify: (_t: string, p: unknown) => got.push(p) }, { WebSocket: network.WebSocket });
    const leaver = await client('nleaver', { notify: () => 'ok' });
    const sender = await client('nsender');
    const topic = topicOf(sender, 'ngone');
    for (const x of [flaky, leaver]) await topicOf(x, 'ngone').join('t');
    await topicOf(leaver, 'ngone').join('other');
    await topic.add('t', 'nghost.never');
    const leaverName = leaver.instanceName!;
    leaver.disconnect();
    await waitFor(async () => {
      const m = await mesh.gatewayMemory(leaverName);
      return m.open === 0 && m.alarm === null;
    }, "the leaver's grace period to end");

    network.offline = true;
    network.drop();
    await waitFor(() => flaky.state === 'reconnecting', 'the flaky client to notice the drop');
    const summary = await topic.announce('t', 'while away');
    const byName = Object.fromEntries(summary.outcomes.map((o) => [o.instanceName, o]));
    expect(byName[flaky.instanceName!]).toEqual({ instanceName: flaky.instanceName, status: 'queued' });
    expect(byName[leaverName]).toMatchObject({ status: 'dropped', errorName: 'ClientDisconnectedError' });
    expect(byName['nghost.never']).toMatchObject({ status: 'dropped', errorName: 'ClientDisconnectedError' });
    expect(summary.dropped.sort()).toEqual([leaverName, 'nghost.never'].sort());
    expect(await topic.list('t')).toEqual([flaky.instanceName]);
    expect(await topic.topicsOf(leaverName)).toEqual([]);

    network.offline = false;
    await waitFor(() => got.length === 1, 'the queued notification to arrive after the reconnect');
    expect(got).toEqual(['while away']);
    await waitFor(async () => (await mesh.gatewayMemory(flaky.instanceName!)).notifications === 0, 'its answer to reach the gateway');
  });

  it('a gateway keeps at most maxPendingNotifications unanswered; the next is refused, not sent', async () => {
    const mute = await client('piled', silent());
    const topic = topicOf(mute, 'piled');
    await topic.join('t');
    for (let i = 0; i < MAX_PENDING_NOTIFICATIONS; i++) expect((await topic.announce('t', i)).sent).toBe(1);
    const refused = await topic.announce('t', 'one too many');
    expect(refused.failed).toEqual([mute.instanceName]);
    expect(refused.outcomes[0]).toMatchObject({ status: 'failed', errorName: 'LimitExceededError', limit: 'maxPendingNotifications' });
    expect(await mesh.gatewayMemory(mute.instanceName!)).toMatchObject({ notifications: MAX_PENDING_NOTIFICATIONS });
    expect(await topic.list('t')).toEqual([mute.instanceName]); // a refusal is no timeout: still subscribed
  });
});

describe('per-sub subscription cap', () => {
  it('refuses the 17th subscription of one user to one topic with LimitExceededError; others are unaffected', async () => {
    const c = await client('capper');
    const topic = topicOf(c, 'cap');
    for (let i = 0; i < 16; i++) expect(await topic.add('t', `capper.tab${i}`)).toBe(true);
    expect(await topic.add('t', 'capper.tab3')).toBe(false); // already subscribed: no new row, no refusal
    await expect(topic.join('t')).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'maxSubscriptionsPerSub', max: 16 });
    await expect(topic.add('t', 'capper.tab99')).rejects.toThrow(/maxSubscriptionsPerSub.*user "capper".*Close another tab/);
    expect(await topic.add('t', 'someone.tab1')).toBe(true); // another user
    expect(await topic.add('u', 'capper.tab99')).toBe(true); // another topic
    expect(await topic.remove('t', 'capper.tab0')).toBe(true);
    expect(await topic.join('t')).toBe(c.instanceName);
  });

  it('refuses a topic that is no string of 1 to 256 characters before storing anything', async () => {
    const c = await client('topics');
    const topic = topicOf(c, 'topics') as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    await expect(topic.join!('x'.repeat(257))).rejects.toThrow(/string of 1 to 256 characters, got 257 characters/);
    await expect(topic.join!(['t'])).rejects.toThrow(/got object/);
    await expect(topic.join!('')).rejects.toThrow(TypeError);
    expect(await topic.join!('x'.repeat(256))).toBe(c.instanceName);
  });

  it('a table from an earlier version gains the new columns, and its rows count towards the cap', async () => {
    const c = await client('upgrader');
    const result = await topicOf(c, 'upgrade').upgradeOldTable();
    expect(result.columns).toEqual(expect.arrayContaining(['sub', 'timeouts']));
    expect(result.subOfRow).toBe('olduser');
    expect(result.cappedAt).toBe(2);
  });
});
