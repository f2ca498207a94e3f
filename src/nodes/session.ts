/**
 * A session with one gateway: the object a Durable Object node returns from
 * `__meshgateSession()`, through which that gateway sends its later calls.
 *
 * A call on it is delivered to the same object, behind the same input gate,
 * as a call on the object's own stub — but it is no new RPC to the object,
 * so it costs the runtime (and the bill) less than one. The gateway drops a
 * session soon after its last call, and opens a new one after a bounded
 * number of calls (src/gateway/node-sessions.ts).
 */
import { RpcTarget } from 'cloudflare:workers';
import type { TextAnswer } from './packed-envelope.js';

/** What a session answers; the node's own text entry does the work. */
export interface TextCallee {
  __meshgateCallText(text: string): TextAnswer | Promise<TextAnswer>;
}

export class NodeSession extends RpcTarget {
  readonly #node: TextCallee;

  constructor(node: TextCallee) {
    super();
    this.#node = node;
  }

  /** One call as a text, answered as one (packed-envelope.ts). */
  callText(text: string): TextAnswer | Promise<TextAnswer> {
    return this.#node.__meshgateCallText(text);
  }
}
