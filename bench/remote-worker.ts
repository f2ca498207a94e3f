/**
 * The hot-object scenario's second workerd process. It holds what, on
 * Cloudflare, runs on other threads than the one hot object: the gateways
 * that call it, and the gateways and relays it fans out to.
 *
 * - The driver (`/hot/{node|direct|packed|bare|envelope}/{count}/{inFlight}`)
 *   calls a node in the bench's own workerd exactly as gateways do: `node`,
 *   each of the calls in flight from a gateway of its own, through that
 *   gateway's session (the library's NodeSessions, a call text of the same
 *   shape); `direct`, one RPC per call; `packed`, the packed envelope a
 *   cancellable call goes as. Or it calls a raw DO there with a string. The
 *   node's object is reached across processes through Miniflare's dev registry.
 * - RemoteStandIns, served on a direct socket, takes a stand-in gateway's
 *   notification and a relay's job from a topic object there.
 *
 * So the other process's CPU is the hot object's own, the RPCs' receiving or
 * sending included, as it would be on Cloudflare.
 */
import { DurableObject, WorkerEntrypoint } from 'cloudflare:workers';
import { callText, packedContext, packedIdentity } from '../src/nodes/packed-envelope.js';
import { NodeSessions } from '../src/gateway/node-sessions.js';
import { callNodeText, type NodeStub as MeshNodeStub } from '../src/nodes/targets.js';
import type { BenchRelay, StandInEnv } from './stand-ins.js';

export { BenchRelay, StandInGateway } from './stand-ins.js';

interface Env extends StandInEnv {
  FANOUT_RELAY: DurableObjectNamespace;
  /** the bench's BenchDO and RawHopTargetDO, in the other process */
  BENCH: DurableObjectNamespace;
  HOP_TARGET: DurableObjectNamespace;
  HOT_DRIVER: DurableObjectNamespace;
}

type NodeStub = { __meshgateCallText(text: string): Promise<string>; __meshgateCallPacked(envelope: unknown): Promise<{ ok: boolean }> };
type BareStub = { echo(message: string): Promise<string>; answer(envelope: unknown): Promise<{ ok: boolean }> };

/** Sends `count` calls, `inFlight` at a time, to the node (as a gateway does) or to the raw DO; the calls answered. */
export class HotDriverDO extends DurableObject<Env> {
  async run(kind: 'node' | 'direct' | 'packed' | 'bare' | 'envelope', count: number, inFlight: number): Promise<number> {
    const origin = { kind: 'client' as const, gateway: 'GATEWAY', instance: 'hot.tab', sub: 'hot' };
    // A gateway packs the origin and identity once per socket and the state per call (src/nodes/packed-envelope.ts).
    const identity = packedIdentity(origin, { sub: 'hot', claims: { sub: 'hot', iat: 1, exp: 2 } })!;
    const envelope = () => ({
      target: { binding: 'BENCH', instance: 'hot' }, method: 'echo', args: '[[1],"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]', context: packedContext(identity, {}), deadlineMs: 60_000,
    });
    const node = this.env.BENCH.get(this.env.BENCH.idFromName('hot')) as unknown as NodeStub;
    const bare = this.env.HOP_TARGET.get(this.env.HOP_TARGET.idFromName('hot')) as unknown as BareStub;
    const target = { binding: 'BENCH', instance: 'hot' };
    let sent = 0;
    let ok = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      // one gateway per caller: its own sessions
      const sessions = new NodeSessions(() => 100);
      while (sent < count) {
        sent++;
        // awaited before the += (which would otherwise read `ok` before the await and lose the others' counts)
        if (kind === 'node') {
          const text = callText(envelope());
          const result = await sessions.run(target, node as unknown as MeshNodeStub, (callee) => callNodeText(callee, text, target.binding));
          if (result?.ok === true) ok++;
          continue;
        }
        // A gateway without a session sends a call with no cancel watch as one text, answered as one ('r' and the result).
        if (kind === 'direct') {
          if ((await node.__meshgateCallText(callText(envelope()))).startsWith('r')) ok++;
          continue;
        }
        const result: { ok?: boolean; length?: number } & Partial<Disposable> = kind === 'packed' ? await node.__meshgateCallPacked(envelope())
          : kind === 'envelope' ? await bare.answer(envelope()) : await bare.echo('x'.repeat(40));
        // results reached through the dev registry's proxy object hold its stub until disposed
        result[Symbol.dispose]?.();
        if (result.ok === true || result.length === 40) ok++;
      }
    }));
    return ok;
  }
}

export class RemoteStandIns extends WorkerEntrypoint<Env> {
  /** A stand-in gateway's notification, answered here: a new entrypoint per RPC, no object to wake. */
  notify(_instanceName: string, _envelope: unknown): { ok: true; queued: boolean } {
    return { ok: true, queued: false };
  }

  /** A relay's job, run by the library's relay here; its gateways are this process's stand-ins (as REMOTE_STANDIN, the name the job carries). */
  relay(relayName: string, job: unknown): Promise<unknown[]> {
    const relays = this.env.FANOUT_RELAY as unknown as DurableObjectNamespace<BenchRelay>;
    return relays.get(relays.idFromName(relayName)).__meshgateRelay(job as never) as Promise<unknown[]>;
  }
}

export default {
  async fetch(request, env): Promise<Response> {
    const url = new URL(request.url);
    if (!url.pathname.startsWith('/hot/')) return new Response('not found', { status: 404 });
    const [kind, count, inFlight] = url.pathname.slice(5).split('/');
    const driver = env.HOT_DRIVER.get(env.HOT_DRIVER.idFromName('driver')) as unknown as DurableObjectStub<HotDriverDO>;
    return new Response(String(await driver.run(kind === 'node' || kind === 'direct' || kind === 'packed' || kind === 'envelope' ? kind : 'bare', Math.min(Number(count) || 0, 100_000), Math.min(Number(inFlight) || 1, 256))));
  },
} satisfies ExportedHandler<Env>;
