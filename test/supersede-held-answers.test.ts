/**
 * A batching client is superseded on real workerd while its gateway holds
 * answers for it (calls sent after an answered one still run). Nothing follows `superseded` on the old socket, and with the new socket resending
 * what the old one did not get, every call is answered exactly once.
 */
import { describe, expect, it } from 'vitest';
import { RawSocket, callFrame, useTestMesh, waitFor } from './support/mesh.js';

const suite = useTestMesh();

describe('supersession while answers are held', () => {
  it('no frame after `superseded` on the old socket; old ∪ new answers every call once', async () => {
    for (let trial = 0; trial < 3; trial++) {
      const instance = `sup${trial}.t`;
      const token = await suite.mesh.token(`sup${trial}`);
      const a = new RawSocket(suite.mesh.wsUrl(instance), token);
      const status = await a.ofType('connection_status');
      const slow = { binding: 'COUNTER', instance: `slow-${trial}` };
      const counter = { binding: 'COUNTER', instance: `count-${trial}` };
      const ids = Array.from({ length: 120 }, (_, i) => `c${i}`);
      // a batch: the socket takes batches; each answer but the last has calls sent after it still running, so it is held (sendSoon)
      a.send([callFrame('slow', slow, 'slowCount', ['k', 400]), ...ids.map((id) => callFrame(id, counter, 'increment', [1]))]);
      await waitFor(() => a.frames.filter((f) => f.type === 'call_response').length >= 20, 'some answers on the old socket');
      const b = new RawSocket(suite.mesh.wsUrl(instance), token);
      await b.ofType('connection_status');
      await a.ofType('superseded');
      await a.closed;
      const sup = a.frames.findIndex((f) => f.type === 'superseded');
      expect(a.frames.slice(sup + 1)).toEqual([]);
      const onA = a.frames.filter((f) => f.type === 'call_response').map((f) => f.id as string);
      expect(new Set(onA).size).toBe(onA.length);
      const missing = ['slow', ...ids].filter((id) => !onA.includes(id));
      const byId = new Map([['slow', callFrame('slow', slow, 'slowCount', ['k', 400])], ...ids.map((id) => [id, callFrame(id, counter, 'increment', [1])] as const)]);
      b.send(missing.map((id) => ({ ...byId.get(id)!, resentFrom: status.epoch })));
      await waitFor(() => b.frames.filter((f) => f.type === 'call_response').length >= missing.length, 'the resends answered');
      const onB = b.frames.filter((f) => f.type === 'call_response').map((f) => f.id as string);
      expect([...onA, ...onB].sort()).toEqual(['slow', ...ids].sort());
      // each increment ran once: the counts are 1..120
      const counts = [...a.frames, ...b.frames].filter((f) => f.type === 'call_response' && f.id !== 'slow').map((f) => JSON.parse(f.result as string)[0] as number);
      expect(counts.sort((x, y) => x - y)).toEqual(ids.map((_, i) => i + 1));
      b.ws.terminate();
    }
  });
});
