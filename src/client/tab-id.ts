/**
 * The tab part of the instance name `{sub}.{tabId}`. In a browser it lives in
 * sessionStorage, so a reload keeps it (and reconnects inside the grace
 * period); a duplicated tab copies sessionStorage, so it asks over
 * BroadcastChannel whether another tab holds the id and takes a new one if so.
 * In Node it is random per client.
 */

const STORAGE_KEY = 'meshgate.tabId';
const CHANNEL = 'meshgate.tab-ids';
/** How long a tab with a stored id waits for a clash answer before using it. */
const CLAIM_WAIT_MS = 120;

function randomId(): string {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('').slice(0, 12);
}

type Message = { kind: 'claim' | 'taken'; tabId: string; nonce: string };

/** Holds a tab id and answers other tabs that claim the same one. */
export class TabIdentity {
  #channel: BroadcastChannel | undefined;
  #tabId: string | undefined;
  readonly #nonce = randomId();

  /** Resolves the tab id, checking for a duplicated tab in browsers. */
  async resolve(): Promise<string> {
    if (this.#tabId) return this.#tabId;
    const storage = (globalThis as { sessionStorage?: Storage }).sessionStorage;
    if (!storage || typeof BroadcastChannel === 'undefined') return (this.#tabId = randomId());
    const stored = storage.getItem(STORAGE_KEY);
    const channel = new BroadcastChannel(CHANNEL);
    this.#channel = channel;
    let tabId = stored ?? randomId();
    if (stored) {
      const clash = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), CLAIM_WAIT_MS);
        channel.onmessage = (event: MessageEvent<Message>) => {
          if (event.data?.kind === 'taken' && event.data.tabId === stored && event.data.nonce !== this.#nonce) {
            clearTimeout(timer);
            resolve(true);
          }
        };
        channel.postMessage({ kind: 'claim', tabId: stored, nonce: this.#nonce } satisfies Message);
      });
      if (clash) tabId = randomId();
    }
    storage.setItem(STORAGE_KEY, tabId);
    this.#tabId = tabId;
    channel.onmessage = (event: MessageEvent<Message>) => {
      if (event.data?.kind === 'claim' && event.data.tabId === tabId && event.data.nonce !== this.#nonce) {
        channel.postMessage({ kind: 'taken', tabId, nonce: this.#nonce } satisfies Message);
      }
    };
    return tabId;
  }

  close(): void {
    this.#channel?.close();
    this.#channel = undefined;
  }
}
