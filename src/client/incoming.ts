/**
 * Calls from the mesh to this client. Only methods of the app's handler
 * object are callable (never Object.prototype's or `constructor`); a call
 * whose chain started at another client is refused unless allowed. Recent call ids
 * are remembered, so a call the gateway delivers again after a reconnect is
 * answered from memory instead of running the handler twice.
 */
import { decodeValue, encodeError, encodeValue } from '../protocol/codec.js';
import { ForbiddenError, LimitExceededError, MeshError, MethodNotExposedError, ProtocolError } from '../protocol/errors.js';
import { encodeFrame, type IncomingCallFrame, type Origin } from '../protocol/frames.js';
import { AnswerMemory } from '../protocol/answer-memory.js';
import { DEFAULTS } from '../protocol/limits.js';
import { MAX_ARGUMENTS } from '../protocol/wire.js';
import { findDataMethod } from '../protocol/method-lookup.js';
import { isStreamable } from '../protocol/streamable.js';

/** What a handler can learn about the call it serves: `this` inside it is the handler object, so this comes from `client.incomingContext`. */
export interface IncomingContext {
  id: string;
  method: string;
  origin: Origin;
  chain: Origin[];
}

/** A handler method by property descriptor: a getter of that name is never run. */
function findHandler(handlers: object | undefined, name: string): ((...args: unknown[]) => unknown) | undefined {
  if (!handlers || name === 'constructor' || name === '__proto__' || name === 'then') return undefined;
  if (name in Object.prototype) return undefined;
  return findDataMethod(handlers, name) as ((...args: unknown[]) => unknown) | undefined;
}


export class IncomingCalls {
  /** answers already sent, by id, bounded by count and bytes */
  readonly #answered = new AnswerMemory(() => ({ count: this.remember, bytes: DEFAULTS.rememberedAnswerBytes }));
  /** ids now running */
  readonly #running = new Set<string>();
  #current: IncomingContext | undefined;

  constructor(
    private readonly handlers: object | undefined,
    private readonly allowClientOrigins: boolean,
    private readonly remember: number,
    private readonly onHandlerError: (error: unknown, context: IncomingContext) => void,
    /** handlers running at once; more are answered with LimitExceededError at once (not remembered, so a redelivery runs) */
    private readonly maxRunning: number = Number.POSITIVE_INFINITY,
    /** answers longer than this would make the gateway close the socket (1009): they become a LimitExceededError */
    private readonly maxAnswerChars: () => number = () => Number.POSITIVE_INFINITY,
    /** a handler answered with a stream (producers.ts sends its chunks as the node reads) */
    private readonly onStream?: (id: string, source: AsyncIterable<unknown> | ReadableStream<unknown>) => void,
    /** true for this client's own origin (its gateway binding and instance name): a call whose chain started here is not another client's */
    private readonly isOwnOrigin: (origin: Extract<Origin, { kind: 'client' }>) => boolean = () => false,
  ) {}

  /** The incoming call whose handler is running synchronously right now. */
  get current(): IncomingContext | undefined {
    return this.#current;
  }

  get runningCount(): number {
    return this.#running.size;
  }

  /** Serves one incoming call; `send` delivers the answer on whatever socket is current when it is ready. */
  async serve(frame: IncomingCallFrame, send: (text: string) => void): Promise<void> {
    const remembered = this.#answered.get(frame.id);
    if (remembered !== undefined) return send(remembered);
    if (this.#running.has(frame.id)) return; // delivered again while running: one answer goes out when done
    if (this.#running.size >= this.maxRunning) {
      const error = new LimitExceededError('maxConcurrentIncomingCalls', this.maxRunning, 'this client is still running that many calls from the mesh; retry later.');
      return send(encodeFrame({ type: 'incoming_call_response', id: frame.id, ok: false, error: encodeError(error) }));
    }
    this.#running.add(frame.id);
    const context: IncomingContext = { id: frame.id, method: frame.method, origin: frame.origin, chain: frame.chain };
    let answer: string;
    try {
      const result = await this.#run(frame, context);
      if (isStreamable(result) && this.onStream) {
        answer = encodeFrame({ type: 'incoming_call_response', id: frame.id, ok: true, stream: true });
        this.onStream(frame.id, result);
      } else {
        answer = encodeFrame({ type: 'incoming_call_response', id: frame.id, ok: true, result: encodeValue(result, 'the value returned by the handler', frame.method) });
      }
    } catch (error) {
      if (!(error instanceof MeshError)) this.onHandlerError(error, context);
      answer = encodeFrame({ type: 'incoming_call_response', id: frame.id, ok: false, error: encodeError(error) });
    }
    if (answer.length > this.maxAnswerChars()) {
      const tooLarge = new LimitExceededError('maxFrameBytes', this.maxAnswerChars(), `the answer to "${frame.method}" encodes to ${answer.length} characters; return less per call.`);
      this.onHandlerError(tooLarge, context);
      answer = encodeFrame({ type: 'incoming_call_response', id: frame.id, ok: false, error: encodeError(tooLarge) });
    }
    this.#running.delete(frame.id);
    this.#answered.remember(frame.id, answer);
    send(answer);
  }

  async #run(frame: IncomingCallFrame, context: IncomingContext): Promise<unknown> {
    if (frame.origin?.kind === 'client' && !this.allowClientOrigins && !this.isOwnOrigin(frame.origin)) {
      throw new ForbiddenError('This client does not accept calls whose chain started at another client: a node acting on its own '
        + 'calls with mesh.client(name, { ownChain: true }); to accept calls relayed from other clients, set allowClientOrigins: true on this client.');
    }
    const handler = findHandler(this.handlers, frame.method);
    if (!handler) throw new MethodNotExposedError(frame.method, 'this client');
    const args = decodeValue(frame.args);
    if (!Array.isArray(args)) throw new ProtocolError('Incoming call arguments must encode an array.', 'bad_payload');
    if (args.length > MAX_ARGUMENTS) throw new LimitExceededError('maxArguments', MAX_ARGUMENTS, 'pass a list as one argument instead of spreading it into many.');
    // Visible only during the handler's synchronous start: concurrent calls would clobber it later.
    this.#current = context;
    let result: unknown;
    try {
      result = handler.apply(this.handlers, args);
    } finally {
      this.#current = undefined;
    }
    return await result;
  }
}
