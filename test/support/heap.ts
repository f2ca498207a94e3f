/**
 * The V8 heap of the test mesh's isolate (every gateway and node of the
 * fixture Worker share it), read through workerd's inspector over the Chrome
 * DevTools Protocol: start the mesh with `miniflare: { inspectorPort: 0 }`.
 * RSS mixes the JS heap with allocator slack and garbage not collected yet;
 * the heap after a forced GC is what is really retained.
 */
import WebSocket from 'ws';
import type { Miniflare } from 'miniflare';

export interface HeapSession {
  /** Runs a full GC, then reads the heap: bytes used by live objects, and bytes the heap has reserved. */
  usedAfterGc(): Promise<{ used: number; total: number }>;
  /** A full heap snapshot (after the GC it forces): live objects by constructor (or node type), and the bytes used. */
  snapshot(): Promise<{ used: number; objects: Map<string, { count: number; bytes: number }> }>;
  close(): void;
}

/** The constructors whose count grew most from `before` to `after` (compiled code and V8's own objects left out: they grow as the JIT warms up). */
export function grownObjects(before: Map<string, { count: number }>, after: Map<string, { count: number }>, top = 5): Array<{ name: string; added: number }> {
  return [...after]
    .filter(([name]) => !['(code)', '(system)', '(object shape)', '(hidden)'].includes(name))
    .map(([name, { count }]) => ({ name, added: count - (before.get(name)?.count ?? 0) }))
    .sort((a, b) => b.added - a.added)
    .slice(0, top);
}

export async function inspectHeap(mf: Miniflare, worker = 'main'): Promise<HeapSession> {
  const base = (await mf.getInspectorURL()).toString().replace(/\/$/, '').replace(/^ws/, 'http');
  const targets = (await (await fetch(`${base}/json/list`)).json()) as Array<{ id: string; webSocketDebuggerUrl: string }>;
  // workerd's inspector names each Worker `core:user:{name}`.
  const target = targets.find((t) => t.id === `core:user:${worker}` || t.id.endsWith(`-${worker}`));
  if (!target) throw new Error(`no inspector target for Worker ${worker} (targets: ${targets.map((t) => t.id).join(', ')})`);
  const ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let nextId = 1;
  const waiting = new Map<number, (message: { result?: unknown; error?: { message: string } }) => void>();
  let chunks: string[] = [];
  ws.on('message', (data) => {
    const message = JSON.parse(data.toString()) as { id?: number; method?: string; params?: { chunk: string }; result?: unknown; error?: { message: string } };
    if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params!.chunk);
    if (message.id === undefined) return;
    waiting.get(message.id)?.(message);
    waiting.delete(message.id);
  });
  const send = <T>(method: string, params: object = {}): Promise<T> => {
    const id = nextId++;
    ws.send(JSON.stringify({ id, method, params }));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method}: no answer from the inspector in 60 s`)), 60_000);
      waiting.set(id, (m) => {
        clearTimeout(timer);
        if (m.error) reject(new Error(`${method}: ${m.error.message}`));
        else resolve(m.result as T);
      });
    });
  };
  await send('HeapProfiler.enable');
  // V8 runs a full GC before every snapshot. HeapProfiler.collectGarbage never answers on workerd (V8 posts it as a task workerd does not run).
  const snapshot = async (): Promise<HeapSnapshot> => {
    chunks = [];
    await send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    return JSON.parse(chunks.join('')) as HeapSnapshot;
  };
  const usage = async (): Promise<{ used: number; total: number }> => {
    const { usedSize, totalSize } = await send<{ usedSize: number; totalSize: number }>('Runtime.getHeapUsage');
    return { used: usedSize, total: totalSize };
  };
  return {
    async usedAfterGc() {
      await snapshot();
      return usage();
    },
    async snapshot() {
      const objects = summarize(await snapshot());
      return { used: (await usage()).used, objects };
    },
    close: () => ws.terminate(),
  };
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Counts and self sizes by node name (an object's constructor), for the node types a leak shows in. */
function summarize(snapshot: HeapSnapshot): Map<string, { count: number; bytes: number }> {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const name = type === 'object' || type === 'closure' ? snapshot.strings[snapshot.nodes[i + nameAt]!]! : `(${type})`;
    const entry = out.get(name) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snapshot.nodes[i + sizeAt]!;
    out.set(name, entry);
  }
  return out;
}
