/**
 * The assistant panel: ask, watch the reply arrive word by word, Stop it.
 * The reply is a stream (`for await` over the call); Stop aborts the call's
 * AbortSignal, which rejects the loop with CancelledError at once and stops
 * the producer on the server. A dropped connection resumes the stream at the
 * next word; only past the grace period does it end as interrupted.
 */
import { CancelledError, StreamInterruptedError, type MeshClient } from 'meshgate/client';
import { ASSISTANT_BINDING, MAX_PROMPT, type AssistantApi } from '../assistant-shared.js';

type Status = 'idle' | 'streaming' | 'done' | 'stopped' | 'interrupted' | 'failed';

function make<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}): HTMLElementTagNameMap[K] {
  return Object.assign(document.createElement(tag), props);
}

export class AssistantPanel {
  readonly #client: MeshClient;
  readonly #room: string;
  readonly #root = make('section', { id: 'assistant' });
  readonly #input = make('input', { id: 'assistant-input', maxLength: MAX_PROMPT, placeholder: 'Ask the assistant…', autocomplete: 'off' });
  readonly #ask = make('button', { id: 'assistant-ask', type: 'submit', textContent: 'Ask', className: 'primary' });
  readonly #stop = make('button', { id: 'assistant-stop', type: 'button', textContent: 'Stop', disabled: true });
  readonly #reply = make('div', { id: 'assistant-reply' });
  readonly #status = make('div', { id: 'assistant-status', className: 'hint' });
  #controller: AbortController | undefined;

  /** Mounted at the top of `container`; the room names the assistant instance. */
  constructor(client: MeshClient, room: string, container: HTMLElement) {
    this.#client = client;
    this.#room = room;
    const form = make('form', { id: 'assistant-form' });
    // Laid out like the composer; styled here so the page's stylesheet needs nothing new.
    form.style.cssText = 'display: flex; gap: 8px;';
    // width 0: the input's own width (20 characters) must not set the column's narrowest width on a phone.
    this.#input.style.cssText = 'flex: 1; width: 0; min-width: 0;';
    this.#reply.style.cssText = 'margin-top: 8px; min-height: 3em; overflow-wrap: anywhere;';
    form.replaceChildren(this.#input, this.#ask, this.#stop);
    this.#root.replaceChildren(make('h2', { textContent: 'Assistant' }), form, this.#reply, this.#status);
    container.insertBefore(this.#root, container.firstChild);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.#run(this.#input.value);
    });
    this.#stop.addEventListener('click', () => this.#controller?.abort());
    this.#show('idle', '');
  }

  /** Stops a reply in progress and removes the panel. */
  unmount(): void {
    this.#controller?.abort();
    this.#root.remove();
  }

  async #run(prompt: string): Promise<void> {
    this.#controller?.abort();
    const controller = (this.#controller = new AbortController());
    const assistant = this.#client.node<AssistantApi>(ASSISTANT_BINDING, this.#room, { signal: controller.signal });
    const words: string[] = [];
    this.#reply.textContent = '';
    this.#show('streaming', 'replying…');
    try {
      for await (const word of assistant.reply(prompt)) {
        words.push(word);
        this.#reply.textContent = words.join(' ');
        this.#reply.dataset.words = String(words.length);
      }
      this.#show('done', `${words.length} words`);
    } catch (error) {
      if (controller !== this.#controller) return; // a newer question took over
      if (error instanceof CancelledError) this.#show('stopped', `stopped after ${words.length} words`);
      else if (error instanceof StreamInterruptedError) this.#show('interrupted', 'the connection was lost for too long: ask again');
      else this.#show('failed', `failed: ${(error as Error).message}`);
    } finally {
      if (controller === this.#controller) this.#controller = undefined;
      this.#stop.disabled = this.#controller === undefined;
    }
  }

  #show(status: Status, text: string): void {
    this.#status.dataset.status = status;
    this.#status.textContent = text;
    this.#stop.disabled = status !== 'streaming';
  }
}
