/**
 * A room's assistant: a Durable Object whose one method streams a reply word
 * by word (an async generator). Stop in the page aborts `this.mesh.signal`,
 * which ends the wait for the next word at once and runs the `finally`.
 */
import { MeshDurableObject, mesh } from 'meshgate';
import { replyWords } from './assistant-shared.js';

/** Between words, as a model producing tokens would pause. */
const WORD_MS = 120;

/** Resolves after `ms`, or at once when `signal` aborts; no timer is left behind either way. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

export class ChatAssistant extends MeshDurableObject {
  /** Each `yield` waits while the page is a window of words behind; Stop aborts the signal and ends the loop. */
  @mesh
  async *reply(prompt: unknown): AsyncGenerator<string> {
    if (typeof prompt !== 'string') throw new TypeError('reply(prompt): prompt must be a string.');
    const signal = this.mesh.signal;
    for (const word of replyWords(prompt)) {
      await pause(WORD_MS, signal);
      if (signal.aborted) return;
      yield word;
    }
  }
}
