/**
 * The chat assistant's contract, shared by its Durable Object, the page and
 * the tests. The reply is deterministic (no model): the same prompt always
 * streams the same words, so a test can tell a lost or repeated word.
 */

export const ASSISTANT_BINDING = 'ASSISTANT';

/** What a client may call on the assistant of a room. */
export interface AssistantApi {
  /** Streams the reply word by word; cancel it (break, or the call's AbortSignal) to stop. */
  reply(prompt: string): AsyncGenerator<string>;
}

/** Prompts longer than this are cut (the reply repeats the prompt). */
export const MAX_PROMPT = 200;

/** The words `reply(prompt)` streams, in order. */
export function replyWords(prompt: string): string[] {
  const asked = prompt.trim().slice(0, MAX_PROMPT) || 'nothing';
  return `You asked: "${asked}". Here is an answer streamed one word at a time from a Durable Object: each word is sent only when the page has room for it, a dropped connection picks up at the next word, and Stop ends the stream at once.`
    .split(' ');
}
