/**
 * How client calls travel to their nodes: one at a time, or many to one
 * target together (a burst); to a Durable Object through this gateway's
 * session with it (node-sessions.ts), else on the node's stub; each context
 * packed where the node takes it, else as objects (a node of an earlier
 * meshgate version). Every call sent here is settled through `host.finish`
 * exactly once.
 */
import { MeshError } from '../protocol/errors.js';
import type { CallFrame } from '../protocol/frames.js';
import type { CallContext, MeshEnvelope, MeshResult } from '../nodes/envelope.js';
import { callNode, callNodeBurst, callNodeBurstPacked, callNodePacked, callNodeText } from '../nodes/targets.js';
import { callText, type PackedEnvelope } from '../nodes/packed-envelope.js';
import { failure } from '../protocol/failure.js';
import type { GatewayConfig } from './config.js';
import { rpcFailure } from './calls.js';
import type { GatewaySockets } from './sockets.js';
import { ContextPacking } from './context-packing.js';
import { NodeStubs } from './node-stubs.js';
import { NodeSessions } from './node-sessions.js';

/** A call read from a socket and not yet sent. */
export type PendingCall = [ws: WebSocket, frame: CallFrame, context: CallContext];

export interface NodeRpcHost {
  readonly env: unknown;
  readonly sockets: GatewaySockets;
  config(): GatewayConfig;
  /** true if the application overrides onBeforeCallToMesh: it may put any value in a context, so contexts travel as objects, not packed */
  callHookSet(): boolean;
  /** how long the node may take for this call */
  deadlineMs(frame: CallFrame): number;
  /** the call's cancel signal, if the client may cancel it */
  cancelOf(frame: CallFrame): MeshEnvelope['cancel'];
  /** the call's outcome */
  finish(ws: WebSocket, frame: CallFrame, result: MeshResult): void;
}

export class NodeRpc {
  readonly #host: NodeRpcHost;
  readonly #stubs: NodeStubs;
  /** sessions with the Durable Objects this gateway calls (node-sessions.ts) */
  readonly #sessions: NodeSessions;
  /** which contexts travel packed, and to which bindings (context-packing.ts) */
  readonly #packing: ContextPacking;
  /** Durable Object bindings whose class said it accepts bursts (MeshDurableObject.acceptsCallBursts) */
  readonly #burstBindings = new Set<string>();

  constructor(host: NodeRpcHost) {
    this.#host = host;
    this.#packing = new ContextPacking(() => host.callHookSet());
    this.#stubs = new NodeStubs(host.env, () => host.config());
    this.#sessions = new NodeSessions(() => host.config().maxCachedStubs);
  }

  /** RPC stubs kept for reuse */
  get stubs(): number {
    return this.#stubs.size;
  }

  /** sessions open with Durable Object nodes */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** True if calls to `binding` may share one RPC: a Worker, or a Durable Object class that said it accepts bursts. */
  takesBursts(binding: string, instance: string | undefined): boolean {
    return instance === undefined || this.#burstBindings.has(binding);
  }

  async send(ws: WebSocket, frame: CallFrame, context: CallContext): Promise<void> {
    let result: MeshResult;
    try {
      const { binding } = frame.to;
      const packed = this.#packing.pack(binding, context);
      const envelope = packed === undefined ? undefined : this.#envelope(frame, packed);
      result = await this.#sessions.run(frame.to, this.#stubs.get(frame.to), async (node) => {
        let answered: MeshResult | undefined;
        // A call with a cancel watch carries a stub, which no text can: it goes as the packed envelope.
        if (envelope !== undefined && envelope.cancel === undefined && this.#packing.takesText(binding)) {
          answered = await callNodeText(node, callText(envelope), binding);
          if (answered === undefined) this.#packing.refusedText(binding); // it ran nothing: the same call, packed
        }
        if (answered === undefined && envelope !== undefined) answered = await callNodePacked(node, envelope);
        if (answered === undefined) {
          if (packed !== undefined) this.#packing.refused(binding); // it ran nothing: the same call, as objects
          answered = await callNode(node, this.#envelope(frame, context));
        }
        return answered;
      });
      if (result.acceptsBursts) this.#burstBindings.add(binding);
    } catch (error) {
      // An RPC that threw may have broken its stub (e.g. the target was reset): build a fresh one next time.
      this.#stubs.forget(frame.to);
      result = failure(rpcFailure(error, frame.method));
    }
    this.#host.finish(ws, frame, result);
  }

  /** Many calls to one target in one RPC; each is answered as its result arrives. */
  async sendBurst(group: PendingCall[]): Promise<void> {
    const open = new Set(group.keys());
    const finish = (index: number, result: MeshResult): void => {
      const call = group[index];
      if (!call || !open.delete(index)) return;
      this.#host.finish(call[0], call[1], result);
    };
    const to = group[0]![1].to;
    const onResults = (results: Array<[number, MeshResult]>): void => {
      this.#host.sockets.together(() => {
        for (const [index, result] of results) finish(index, result);
      }, this.#host.config().maxFrameBytes);
    };
    try {
      const packed = this.#packAll(group);
      const accepted = await this.#sessions.run(to, this.#stubs.get(to), async (node) => {
        const answered: boolean | null = packed === undefined ? null : await callNodeBurstPacked(node, packed, onResults);
        if (answered !== null) return answered;
        if (packed !== undefined) this.#packing.refused(to.binding); // it ran nothing: the same burst, as objects
        return callNodeBurst(node, group.map(([, frame, context]) => this.#envelope(frame, context)), onResults);
      });
      // Only an explicit false is a refusal: a node of an earlier meshgate version answers undefined after running the burst.
      if (accepted === false) {
        // The class does not accept bursts (a new version of it, or another instance mid-deployment):
        // it ran nothing, so each call goes on its own.
        this.#burstBindings.delete(to.binding);
        for (const call of group) void this.send(...call);
        return;
      }
      if (open.size > 0) throw new MeshError('The node finished a burst without answering every call.');
    } catch (error) {
      this.#stubs.forget(to);
      for (const index of [...open]) finish(index, failure(rpcFailure(error, group[index]![1].method)));
    }
  }

  /** Every call of a burst packed, or undefined if one context travels as objects (then all do). */
  #packAll(group: PendingCall[]): PackedEnvelope[] | undefined {
    const packed: PackedEnvelope[] = [];
    for (const [, frame, context] of group) {
      const text = this.#packing.pack(frame.to.binding, context);
      if (text === undefined) return undefined;
      packed.push(this.#envelope(frame, text));
    }
    return packed;
  }

  /** The envelope of a call, its context as objects or packed. */
  #envelope<Context extends CallContext | string>(frame: CallFrame, context: Context): Context extends string ? PackedEnvelope : MeshEnvelope {
    const envelope: Omit<MeshEnvelope, 'context'> & { context: Context } = { target: frame.to, method: frame.method, args: frame.args, context, deadlineMs: this.#host.deadlineMs(frame) };
    const cancel = this.#host.cancelOf(frame);
    if (cancel) envelope.cancel = cancel;
    return envelope as never;
  }
}
