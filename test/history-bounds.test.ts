/**
 * TopicHistory's read bound, on a stand-in for SQLite that counts the rows a
 * recovery pulls: a position from long ago must not make the object read
 * every kept publication before it finds the answer too large.
 */
import { expect, it } from 'vitest';
import { TopicHistory } from '../src/subscriptions/history.js';

const EPOCH = 'e1';
const KEPT = 50;

/** SqlStorage with one topic at offset KEPT whose publications are each `size` characters. */
function storage(size: number) {
  const pulled = { rows: 0 };
  const rows = (list: unknown[]) => ({ toArray: () => list, one: () => list[0], [Symbol.iterator]: () => list[Symbol.iterator]() });
  const sql = {
    exec(query: string, ...args: unknown[]) {
      if (query.startsWith('SELECT epoch')) return rows([{ epoch: EPOCH, last_offset: KEPT }]);
      if (query.startsWith('SELECT seq')) {
        const from = (args[1] as number) + 1;
        return {
          *[Symbol.iterator]() {
            for (let seq = from; seq <= KEPT; seq++) {
              pulled.rows++;
              yield { seq, at: Date.now(), data: JSON.stringify(['x'.repeat(size)]) };
            }
          },
          toArray() { return [...this]; },
        };
      }
      return rows([]);
    },
  };
  return { sql: sql as unknown as SqlStorage, pulled };
}

it('a recovery stops reading once what it read is past maxRecoveryBytes', () => {
  const { sql, pulled } = storage(100_000);
  const history = new TopicHistory(sql, 'kept', { maxRecoveryBytes: 256 * 1024 });
  const recovery = history.since('doc', { epoch: EPOCH, offset: 0 });
  expect(recovery).toMatchObject({ recovered: false, publications: [] });
  expect(pulled.rows).toBe(3); // 3 × 100 000 characters is past 256 Ki: the other 47 are never read
});

it('a position further back than maxCount reads nothing', () => {
  const { sql, pulled } = storage(10);
  const history = new TopicHistory(sql, 'kept', { maxCount: 20 });
  expect(history.since('doc', { epoch: EPOCH, offset: 0 })).toMatchObject({ recovered: false, publications: [] });
  expect(pulled.rows).toBe(0);
});

it('a recovery inside both bounds returns every publication it missed, in order', () => {
  const { sql, pulled } = storage(10);
  const history = new TopicHistory(sql, 'kept', {});
  const recovery = history.since('doc', { epoch: EPOCH, offset: 40 });
  expect(recovery.recovered).toBe(true);
  expect(recovery.publications.map((p) => p.offset)).toEqual([41, 42, 43, 44, 45, 46, 47, 48, 49, 50]);
  expect(pulled.rows).toBe(10);
});
