/** GatewaySockets.together on its own: the batches it makes for a client that batches stay within maxFrameBytes. */
import { describe, expect, it } from 'vitest';
import { GatewaySockets } from '../../src/gateway/sockets.js';

function socket(): WebSocket & { sent: string[] } {
  const sent: string[] = [];
  return { sent, send: (text: string) => void sent.push(text) } as unknown as WebSocket & { sent: string[] };
}

describe('GatewaySockets.together', () => {
  it('never makes a batch longer than maxChars, even when the frames fit exactly but for the brackets', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const ws = socket();
    sockets.takesBatches(ws);
    const frame = (n: number) => JSON.stringify({ type: 'call_response', id: 'x', ok: true, result: 'y'.repeat(n) });
    const texts = [frame(40), frame(40), frame(40)];
    const L = texts[0]!.length;
    for (const maxChars of [2 * L + 1, 2 * L + 2, 2 * L + 3, 3 * L + 3, 3 * L + 4]) {
      ws.sent.length = 0;
      sockets.together(() => {
        for (const text of texts) sockets.send(ws, text);
      }, maxChars);
      expect(ws.sent.every((m) => m.length <= maxChars), `maxChars ${maxChars}: ${ws.sent.map((m) => m.length).join(', ')}`).toBe(true);
      expect(ws.sent.flatMap((m) => (m.startsWith('[') ? JSON.parse(m) : [JSON.parse(m)])).length).toBe(3);
    }
  });
});
