/** The grace memory on its own, over an in-memory stand-in for Durable Object storage: what a drop writes, and what a reconnect lets go. */
import { describe, expect, it } from 'vitest';
import { GraceMemory } from '../../src/gateway/grace-memory.js';

/** The part of DurableObjectStorage the grace memory uses: get (one key or many), put (an object of entries), delete (many keys). */
function memoryStorage() {
  const data = new Map<string, unknown>();
  const storage = {
    async get(keys: string | string[]) {
      if (typeof keys === 'string') return data.get(keys);
      return new Map(keys.filter((k) => data.has(k)).map((k) => [k, data.get(k)]));
    },
    async put(entries: Record<string, unknown>) {
      for (const [k, v] of Object.entries(entries)) data.set(k, v);
    },
    async delete(keys: string[]) {
      for (const k of keys) data.delete(k);
    },
  };
  return { data, storage: storage as unknown as DurableObjectStorage };
}

describe('GraceMemory', () => {
  const answers: Array<[string, string]> = Array.from({ length: 20 }, (_, i) => [`c${i}`, `answer ${i} ${'x'.repeat(1000)}`]);

  it('a client that reconnects and drops again over and over does not make each drop rewrite the answers it already had the chance to get', async () => {
    const { data, storage } = memoryStorage();
    const memory = new GraceMemory(storage);
    for (const [id] of answers) memory.noteCall(id, Date.now() + 60_000, 1_000);
    const first = memory.save('epoch-1', answers);
    expect(first.chars).toBeGreaterThan(20_000); // the 20 answers the client may still resend
    await memory.reconnected((id) => answers.some(([answered]) => answered === id));
    expect(data.size).toBe(0); // deleted at the reconnect
    let rewritten = 0;
    for (let cycle = 0; cycle < 10; cycle++) {
      rewritten += memory.save('epoch-1', answers).chars;
      await memory.reconnected(() => true);
    }
    expect(rewritten).toBeLessThan(10 * 200); // only the header each time
  });

  it('a call still running at the reconnect stays wanted: its answer is stored at the next drop', async () => {
    const { storage } = memoryStorage();
    const memory = new GraceMemory(storage);
    memory.noteCall('done', Date.now() + 60_000, 1_000);
    memory.noteCall('running', Date.now() + 60_000, 1_000);
    memory.save('e', [['done', 'a']]);
    await memory.reconnected((id) => id === 'done');
    const next = memory.save('e', [['done', 'a'], ['running', 'the late answer']]);
    const fresh = new GraceMemory(storage); // a later incarnation after an eviction
    expect((await fresh.restore())?.answers).toEqual([['running', 'the late answer']]);
    expect(next.keys).toBe(2);
  });
});
