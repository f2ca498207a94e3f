/** Topic history and recovery on real workerd: offsets, epochs, the client helper `Topics` across a long absence and a reload. */
import { describe, expect, it } from 'vitest';
import { MeshClient, Topics, type Publication } from '../src/client/index.js';
import { createNetwork, waitFor } from './support/network.js';
import { useSubscriptionsMesh, type Topic } from './support/subscriptions-mesh.js';

const GRACE_MS = 500;
const mesh = useSubscriptionsMesh({ GRACE_MS: String(GRACE_MS) });
/** waitFor with room for a loaded machine: these wait on sockets, alarms and fan-outs of several objects. */
const until = <T>(check: () => Promise<T> | T, what: string, timeoutMs = 15_000, intervalMs = 50) => waitFor(check, what, timeoutMs, intervalMs);

/** A Map behind the Storage interface: stands in for sessionStorage across a "reload". */
function memoryStorage() {
  const map = new Map<string, string>();
  return { getItem: (k: string) => map.get(k) ?? null, setItem: (k: string, v: string) => void map.set(k, v), map };
}

type Seen = { data: unknown; offset: number; recovered: boolean };

/**
 * A real MeshClient whose Topics helper follows `topicName` of set `set` on
 * TOPIC `room`, recording what it delivers; it subscribes from onSubscriptionRequired.
 */
async function follower(sub: string, set: 'kept' | 'brief', room: string, topicName: string, extra: { storage?: ReturnType<typeof memoryStorage>; network?: ReturnType<typeof createNetwork>; instanceName?: string } = {}) {
  const seen: Seen[] = [];
  const recoveries: Array<{ recovered: boolean; missed: number }> = [];
  const topics = new Topics(extra.storage ? { storage: extra.storage } : {});
  let connected!: (client: MeshClient) => void;
  const ready = new Promise<MeshClient>((resolve) => (connected = resolve));
  topics.topic(topicName, {
    subscribe: async (since) => (await ready).node<Topic>('TOPIC', room).joinFrom(set, topicName, since),
    onPublication: (data, p: Publication & { recovered: boolean }) => seen.push({ data, offset: p.offset, recovered: p.recovered }),
    onRecovery: ({ recovered, missed }) => recoveries.push({ recovered, missed }),
  });
  const client = await mesh.client(sub, topics.handlers, {
    onSubscriptionRequired: () => topics.resubscribe(),
    ...(extra.network ? { WebSocket: extra.network.WebSocket } : {}),
    ...(extra.instanceName ? { instanceName: extra.instanceName } : {}),
  });
  connected(client);
  await until(() => recoveries.length > 0, 'the first subscribe');
  return { client, topics, seen, recoveries };
}

/** Waits until the gateway of `instanceName` has no socket and its grace period (started after `since`) is over. */
async function graceOver(instanceName: string, since: number): Promise<void> {
  await until(async () => {
    const memory = await mesh.gatewayMemory(instanceName);
    return memory.open === 0 && memory.alarm === null && (memory.graceEndedAt ?? 0) >= since;
  }, 'the grace period to end');
}

describe('topic history', () => {
  it('reading topics never published to writes nothing: 40 names leave one row (their shared epoch), and the first publication recovers', async () => {
    const ann = await mesh.client('hist-rows');
    const room = ann.node<Topic>('TOPIC', 'history-rows');
    const positions = [];
    for (let i = 0; i < 40; i++) positions.push(await room.joinFrom('kept', `never-${i}`));
    expect(new Set(positions.map((p) => p.epoch)).size).toBe(1);
    expect(positions.every((p) => p.offset === 0 && p.recovered === false)).toBe(true);
    expect(await room.historyTopicRows('kept')).toBe(1);
    // the first publication takes that epoch, so a client that joined before it recovers it
    const { epoch } = positions[7]!;
    expect((await room.publish('kept', 'never-7', 'first')).epoch).toBe(epoch);
    const recovered = await room.joinFrom('kept', 'never-7', { offset: 0, epoch });
    expect(recovered).toMatchObject({ recovered: true, offset: 1 });
    expect(recovered.publications.map((p) => p.data)).toEqual(['first']);
    expect(await room.historyTopicRows('kept')).toBe(2);
  });

  it('after clear, a position of the earlier history never matches the next one', async () => {
    const ann = await mesh.client('hist-clear');
    const room = ann.node<Topic>('TOPIC', 'history-clear');
    for (let i = 1; i <= 3; i++) await room.publish('kept', 'again', i);
    const before = await room.joinFrom('kept', 'again');
    await room.clearHistory('kept', 'again');
    for (let i = 1; i <= 5; i++) await room.publish('kept', 'again', i * 10);
    const after = await room.joinFrom('kept', 'again', { offset: 3, epoch: before.epoch });
    expect(after).toMatchObject({ recovered: false, publications: [], offset: 5 });
    expect(after.epoch).not.toBe(before.epoch);
  });

  it('gives offsets in order and recovers exactly what was missed, or says it cannot', async () => {
    const ann = await mesh.client('hist-ann');
    const room = ann.node<Topic>('TOPIC', 'history-units');
    const first = await room.joinFrom('kept', 'news');
    expect(first).toMatchObject({ topic: 'news', offset: 0, recovered: false, publications: [] });
    const offsets = [];
    for (let i = 1; i <= 5; i++) offsets.push((await room.publish('kept', 'news', { i })).offset);
    expect(offsets).toEqual([1, 2, 3, 4, 5]);
    const { epoch } = first;

    const missed = await room.joinFrom('kept', 'news', { offset: 2, epoch });
    expect(missed.recovered).toBe(true);
    expect(missed.publications.map((p) => [p.offset, p.data, p.epoch])).toEqual([[3, { i: 3 }, epoch], [4, { i: 4 }, epoch], [5, { i: 5 }, epoch]]);
    expect(await room.joinFrom('kept', 'news', { offset: 5, epoch })).toMatchObject({ recovered: true, publications: [], offset: 5 });
    // Another epoch, or an offset the topic never reached: not recovered, nothing returned.
    expect(await room.joinFrom('kept', 'news', { offset: 2, epoch: 'another' })).toMatchObject({ recovered: false, publications: [], offset: 5, epoch });
    expect(await room.joinFrom('kept', 'news', { offset: 9, epoch })).toMatchObject({ recovered: false, publications: [] });
    await expect(room.publish('kept', 'x'.repeat(257), 'too long a topic')).rejects.toThrow(/string of 1 to 256 characters/);
    // A hostile position is refused before anything is read.
    for (const bad of [{ offset: -1, epoch }, { offset: 1.5, epoch }, { offset: 1, epoch: 'x'.repeat(65) }, 'offset 3', { offset: '3', epoch }]) {
      await expect(room.joinFrom('kept', 'news', bad)).rejects.toThrow(/A topic position must be/);
    }
  });

  it('keeps at most maxCount: a recovery returns at most that many, and one reaching further back is refused', async () => {
    const ann = await mesh.client('hist-cap');
    const room = ann.node<Topic>('TOPIC', 'history-cap');
    const { epoch } = await room.joinFrom('kept', 'flood');
    for (let i = 1; i <= 60; i++) await room.appendSilently('kept', 'flood', i);
    expect(await room.joinFrom('kept', 'flood', { offset: 0, epoch })).toMatchObject({ recovered: false, publications: [], offset: 60 });
    expect(await room.joinFrom('kept', 'flood', { offset: 9, epoch })).toMatchObject({ recovered: false }); // 10 was pruned
    const all = await room.joinFrom('kept', 'flood', { offset: 10, epoch });
    expect(all.recovered).toBe(true);
    expect(all.publications.map((p) => p.data)).toEqual(Array.from({ length: 50 }, (_, i) => i + 11));
  });

  it('refuses a publication too large to recover, and a recovery past maxRecoveryBytes is not recovered', async () => {
    const ann = await mesh.client('hist-bytes');
    const room = ann.node<Topic>('TOPIC', 'history-bytes');
    const { epoch } = await room.joinFrom('brief', 'big');
    await expect(room.publish('brief', 'big', 'x'.repeat(5000))).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'history.maxRecoveryBytes', max: 4096 });
    for (let i = 0; i < 3; i++) await room.publish('brief', 'big', 'y'.repeat(1500));
    expect(await room.joinFrom('brief', 'big', { offset: 0, epoch })).toMatchObject({ recovered: false, publications: [], offset: 3 });
    expect((await room.joinFrom('brief', 'big', { offset: 1, epoch })).publications).toHaveLength(2);
  });
});

describe('Topics (client helper) on workerd', () => {
  it('a client away past its grace period recovers every publication made meanwhile, once each, in order', async () => {
    const network = createNetwork();
    const away = await follower('rec-away', 'kept', 'recovery', 'chat', { network });
    const speaker = await mesh.client('rec-speaker');
    const room = speaker.node<Topic>('TOPIC', 'recovery');
    await room.publish('kept', 'chat', 'before');
    await until(() => away.seen.length === 1, 'the live publication');

    const dropped = Date.now();
    network.offline = true;
    network.drop();
    await graceOver(away.client.instanceName!, dropped); // gone for good: its gateway forgot it, its subscription will be dropped
    const published = [];
    for (let i = 0; i < 20; i++) published.push(`missed ${i}`);
    for (const text of published) await room.publish('kept', 'chat', text);

    network.offline = false;
    await until(() => away.seen.length === 21, 'the recovery', 15_000);
    expect(away.recoveries).toEqual([{ recovered: false, missed: 0 }, { recovered: true, missed: 20 }]);
    expect(away.seen.map((s) => s.data)).toEqual(['before', ...published]);
    expect(away.seen.map((s) => s.offset)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(away.seen.map((s) => s.recovered)).toEqual([false, ...published.map(() => true)]);

    // Subscribed again: the next one comes live, once.
    await room.publish('kept', 'chat', 'after');
    await until(() => away.seen.length === 22, 'the live publication after the recovery');
    expect(away.seen[21]).toEqual({ data: 'after', offset: 22, recovered: false });
  });

  it('a reload (a new client, positions from storage) recovers what came after the last one shown', async () => {
    const storage = memoryStorage();
    const first = await follower('rec-reload', 'kept', 'reload', 'feed', { storage });
    const room = first.client.node<Topic>('TOPIC', 'reload');
    await room.publish('kept', 'feed', 1);
    await room.publish('kept', 'feed', 2);
    await until(() => first.seen.length === 2, 'two live publications');
    first.client.disconnect();
    const writer = await mesh.client('rec-reload-writer');
    await writer.node<Topic>('TOPIC', 'reload').publish('kept', 'feed', 3);
    await writer.node<Topic>('TOPIC', 'reload').publish('kept', 'feed', 4);

    const reloaded = await follower('rec-reload', 'kept', 'reload', 'feed', { storage });
    expect(reloaded.recoveries).toEqual([{ recovered: true, missed: 2 }]);
    expect(reloaded.seen).toEqual([{ data: 3, offset: 3, recovered: true }, { data: 4, offset: 4, recovered: true }]);
  });

  it('a client away past the history window is told recovered: false and gets none of the old ones', async () => {
    const network = createNetwork();
    const away = await follower('rec-window', 'brief', 'window', 'ticks', { network });
    const speaker = await mesh.client('rec-window-speaker');
    const room = speaker.node<Topic>('TOPIC', 'window');
    await room.publish('brief', 'ticks', 'seen');
    await until(() => away.seen.length === 1, 'the live publication');

    const dropped = Date.now();
    network.offline = true;
    network.drop();
    await graceOver(away.client.instanceName!, dropped);
    await room.publish('brief', 'ticks', 'too old');
    const published = Date.now();
    await until(() => Date.now() - published > 1600, 'the history window (1.5 s) to pass', 15_000, 100);
    network.offline = false;
    await until(() => away.recoveries.length === 2, 'the resubscribe', 15_000);
    expect(away.recoveries[1]).toEqual({ recovered: false, missed: 0 });
    expect(away.seen.map((s) => s.data)).toEqual(['seen']);
    expect(away.topics.position('ticks')?.offset).toBe(2); // it starts again from now

    await room.publish('brief', 'ticks', 'new');
    await until(() => away.seen.length === 2, 'the next live one');
    expect(away.seen[1]).toMatchObject({ data: 'new', offset: 3, recovered: false });
  });

  it('a gap in the offsets (a notification that never came) is recovered by itself, in order', async () => {
    const reader = await follower('rec-gap', 'kept', 'gap', 'g');
    const room = reader.client.node<Topic>('TOPIC', 'gap');
    await room.publish('kept', 'g', 'one');
    await room.appendSilently('kept', 'g', 'two (never notified)');
    await room.publish('kept', 'g', 'three');
    await until(() => reader.seen.length === 3, 'the gap to be filled');
    // 'three' came live but waited for the recovery, which brought it too: delivered once, in its place.
    expect(reader.seen.map((s) => [s.data, s.offset])).toEqual([['one', 1], ['two (never notified)', 2], ['three', 3]]);
    expect(reader.seen[1]!.recovered).toBe(true);
    expect(reader.recoveries.at(-1)).toEqual({ recovered: true, missed: 2 });
  });
});
