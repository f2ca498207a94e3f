/** The client helper Topics alone: ordering, duplicates, the buffer during a recovery, storage it cannot read, presence versions. */
import { describe, expect, it } from 'vitest';
import { Topics, type Publication, type Subscribed, type TopicPosition } from '../../src/client/index.js';

const EPOCH = 'e1';
const pub = (offset: number, epoch = EPOCH): Publication => ({ topic: 't', offset, epoch, at: 0, data: `m${offset}` });

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Topics', () => {
  it('delivers live publications once, in order, and recovers across a gap without duplicates', async () => {
    const seen: string[] = [];
    const asked: Array<TopicPosition | undefined> = [];
    const answers: Array<ReturnType<typeof deferred<Subscribed>>> = [];
    const topics = new Topics();
    topics.topic('t', {
      subscribe: (since) => (asked.push(since), answers[answers.push(deferred<Subscribed>()) - 1]!.promise),
      onPublication: (data) => seen.push(String(data)),
    });
    const first = topics.resubscribe();
    topics.handlers.meshgatePublication(pub(2)); // arrives before the subscribe answers: waits
    expect(seen).toEqual([]);
    answers[0]!.resolve({ topic: 't', offset: 1, epoch: EPOCH, recovered: false, publications: [] });
    await first;
    expect(asked).toEqual([undefined]);
    expect(seen).toEqual(['m2']);

    topics.handlers.meshgatePublication(pub(2)); // a duplicate (a redelivery): dropped
    topics.handlers.meshgatePublication(pub(5)); // a gap: recovery from 2
    topics.handlers.meshgatePublication(pub(4)); // waits with 5
    expect(asked).toEqual([undefined, { offset: 2, epoch: EPOCH }]);
    answers[1]!.resolve({ topic: 't', offset: 4, epoch: EPOCH, recovered: true, publications: [pub(3), pub(4)] });
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(['m2', 'm3', 'm4', 'm5']);
    expect(topics.position('t')).toEqual({ offset: 5, epoch: EPOCH });
  });

  it('another epoch recovers (and is told recovered: false); gives up after a few rounds instead of looping', async () => {
    let calls = 0;
    const results: boolean[] = [];
    const topics = new Topics();
    topics.topic('t', {
      // A server that always answers one behind what was published: the gap never closes.
      subscribe: async () => (calls++, { topic: 't', offset: 1, epoch: 'e2', recovered: false, publications: [] }),
      onRecovery: ({ recovered }) => results.push(recovered),
    });
    await topics.resubscribe();
    topics.handlers.meshgatePublication(pub(9, 'e2'));
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toBe(1 + 3);
    expect(results.every((r) => r === false)).toBe(true);
  });

  it('a resubscribe while a recovery is under way subscribes again once that one settles (it may have been lost with the old socket)', async () => {
    const lost = deferred<Subscribed>();
    let calls = 0;
    const topics = new Topics({ onError: () => {} });
    const handle = topics.topic('t', {
      subscribe: () => (++calls === 1 ? lost.promise : Promise.resolve({ topic: 't', offset: 3, epoch: EPOCH, recovered: false, publications: [] })),
    });
    const inFlight = handle.subscribe().catch((error: Error) => error.message);
    const resubscribed = topics.resubscribe();
    lost.resolve(Promise.reject(new Error('the socket dropped')) as unknown as Subscribed);
    expect(await inFlight).toBe('the socket dropped');
    await resubscribed;
    expect(calls).toBe(2);
    expect(topics.position('t')).toEqual({ offset: 3, epoch: EPOCH });
  });

  it('resubscribe(names) subscribes only the topics named', async () => {
    const asked: string[] = [];
    const topics = new Topics();
    for (const name of ['a', 'b', 'c']) {
      topics.topic(name, { subscribe: async () => (asked.push(name), { topic: name, offset: 0, epoch: EPOCH, recovered: false, publications: [] }) });
    }
    await topics.resubscribe(['b', 'missing']);
    expect(asked).toEqual(['b']);
    await topics.resubscribe();
    expect(asked.sort()).toEqual(['a', 'b', 'b', 'c']);
  });

  it('keeps positions in the given storage, and ignores what it cannot read there', async () => {
    const store = new Map<string, string>([['meshgate.topics', '{"t":{"offset":"x","epoch":1},"u":{"offset":3,"epoch":"e9"}}']]);
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    const topics = new Topics({ storage });
    expect(topics.position('t')).toBeUndefined();
    expect(topics.position('u')).toEqual({ offset: 3, epoch: 'e9' });
    topics.topic('t', { subscribe: async () => ({ topic: 't', offset: 7, epoch: EPOCH, recovered: false, publications: [] }) });
    await topics.resubscribe();
    expect(JSON.parse(store.get('meshgate.topics')!)).toEqual({ u: { offset: 3, epoch: 'e9' }, t: { offset: 7, epoch: EPOCH } });
    expect(new Topics({ storage: { getItem: () => '{not json', setItem: () => {} } }).position('t')).toBeUndefined();
  });

  it('applies a presence snapshot, then only events newer than it', async () => {
    const topics = new Topics();
    const answer = deferred<Subscribed>();
    topics.topic('t', { subscribe: () => answer.promise });
    const done = topics.resubscribe();
    const ann = { sub: 'ann', connections: [{ instanceName: 'ann.1', meta: {}, joinedAt: 1 }] };
    const bob = { sub: 'bob', connections: [{ instanceName: 'bob.1', meta: {}, joinedAt: 2 }] };
    topics.handlers.meshgatePresence({ topic: 't', kind: 'join', sub: 'ann', member: ann, version: 1 }); // already in the snapshot
    topics.handlers.meshgatePresence({ topic: 't', kind: 'join', sub: 'bob', member: bob, version: 3 });
    answer.resolve({ topic: 't', offset: 0, epoch: EPOCH, recovered: false, publications: [], presence: { topic: 't', members: [ann], version: 2 } });
    await done;
    expect(topics.members('t').map((m) => m.sub)).toEqual(['ann', 'bob']);
    topics.handlers.meshgatePresence({ topic: 't', kind: 'leave', sub: 'ann', version: 4 });
    topics.handlers.meshgatePresence({ topic: 't', kind: 'join', sub: 'ann', member: ann, version: 4 }); // same version again: ignored
    expect(topics.members('t').map((m) => m.sub)).toEqual(['bob']);
  });
});
