/**
 * meshgate's own per-call code, stage by stage, for the own_code scenario:
 * each stage is what a client's call to a Durable Object runs in the gateway
 * or the node, called here in a loop inside workerd (warm, no sockets, no
 * RPC), so the process CPU it costs is meshgate's alone.
 */
import { encodeCallResponse } from '../src/protocol/frames.js';
import { AnswerMemory } from '../src/protocol/answer-memory.js';
import { Deadlines } from '../src/gateway/deadlines.js';
import { FrameIntake } from '../src/gateway/frame-intake.js';
import { GraceMemory } from '../src/gateway/grace-memory.js';
import { clientState } from '../src/gateway/calls.js';
import { defaultGatewayConfig } from '../src/gateway/config.js';
import { packedContext, packedIdentity, unpackEnvelope } from '../src/nodes/packed-envelope.js';
import { dispatchCall } from '../src/nodes/dispatch.js';
import { mesh } from '../src/nodes/exposed.js';

const ARGS = '[[1],"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]';
const config = defaultGatewayConfig();
const intakeConfig = { ...config, framesPerSecond: 1e12, frameBurst: 1e12, bytesPerSecond: 1e12, byteBurst: 1e12 };
const frames = Array.from({ length: 1024 }, (_, i) => JSON.stringify({ type: 'call', id: `c-${i}`, to: { binding: 'BENCH', instance: 'own' }, method: 'echo', args: ARGS, timeoutMs: 60_000 }));
const socket = {} as WebSocket;
const intake = new FrameIntake();
const answers = new AnswerMemory(() => ({ count: config.rememberedCallIds, bytes: config.rememberedAnswerBytes }));
const grace = new GraceMemory({} as DurableObjectStorage);
const running = new Deadlines<string>({ slackMs: 100 });
const identity = packedIdentity({ kind: 'client', gateway: 'GATEWAY', instance: 'own.tab', sub: 'own' }, { sub: 'own', claims: { sub: 'own', iat: 1, exp: 2 } })!;
const packed = { target: { binding: 'BENCH', instance: 'own' }, method: 'echo', args: ARGS, context: packedContext(identity, {}), deadlineMs: 60_000 };

class Node {
  @mesh
  echo(value: unknown): unknown {
    return value;
  }
}
const node = new Node();
const unpacked = unpackEnvelope(packed);

/** Each stage, as the call path runs it once per call. */
const STAGES: Record<string, { side: 'gateway' | 'node'; run: (i: number) => unknown }> = {
  'read and check the call frame': { side: 'gateway', run: (i) => intake.read(socket, frames[i & 1023]!, intakeConfig) },
  'running call: deadline in, out': { side: 'gateway', run: (i) => { running.add(`c-${i}`, 60_000, () => {}); running.delete(`c-${i}`); } },
  'grace note (answer worth keeping until)': { side: 'gateway', run: (i) => grace.noteCall(`c-${i}`, 1e15, config.rememberedCallIds) },
  'context: state, packed': { side: 'gateway', run: () => packedContext(identity, clientState(undefined, config.reservedStateKeys)) },
  'answer frame built': { side: 'gateway', run: (i) => encodeCallResponse(`c-${i & 1023}`, true, ARGS) },
  'answer memory (resend check, remember)': { side: 'gateway', run: (i) => { answers.replay(`a-${i}`, socket); answers.remember(`a-${i}`, ARGS, socket); } },
  'envelope unpacked': { side: 'node', run: () => unpackEnvelope(packed) },
  'dispatch: allowlist, decode, AsyncLocalStorage, method, encode': { side: 'node', run: () => dispatchCall(node, unpacked) },
};

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const stage = STAGES[url.searchParams.get('stage') ?? ''];
    if (!stage) return Response.json(Object.fromEntries(Object.entries(STAGES).map(([name, { side }]) => [name, side])));
    const count = Math.min(Number(url.searchParams.get('n')) || 0, 1_000_000);
    for (let i = 0; i < count; i++) {
      const ran = stage.run(i);
      if (ran instanceof Promise) await ran; // only dispatch may answer later; awaiting the rest would add a turn to each
    }
    return new Response(String(count));
  },
};
