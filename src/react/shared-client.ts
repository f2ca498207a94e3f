/**
 * One MeshClient per tab and key, shared by every provider that asks for it.
 * React may render a provider and throw the render away, mount it twice in
 * StrictMode, or remount it on a hot reload; so the client is not tied to one
 * component: it is disposed only when no provider has held it for
 * `disposeDelayMs`, and a provider that mounts before then takes it over.
 */
import { MeshClient, type ConnectionState, type MeshClientOptions } from '../client/mesh-client.js';

/** What useConnectionState() returns; a new object only when something in it changed. */
export interface ConnectionSnapshot {
  state: ConnectionState;
  /** from the last connection: whether the gateway had forgotten this client (it then re-subscribed) */
  subscriptionRequired: boolean | undefined;
  /** another tab or process took over this identity; call `client.connect()` to take it back */
  superseded: boolean;
  /** the reason the token was refused for good, while the client is stopped for it */
  loginRequired: string | undefined;
  /** the server speaks none of this client's protocol versions: reload the page */
  updateRequired: string | undefined;
  instanceName: string | undefined;
  /** counts the connections the gateway accepted (a new one after each reconnect): an effect keyed on it runs once per connection */
  connections: number;
  /** this client object's first connection reused an identity the gateway remembers (a reload): the server kept its subscriptions, the page's state is new */
  reloaded: boolean;
}

type Handler = (...args: never[]) => unknown;

export class SharedClient<Handlers extends object = object> {
  readonly client: MeshClient<Handlers>;
  /** the handler object the client was given: a property per method some component registered */
  readonly #handlers: Record<string, Handler> = Object.create(null);
  /** the handlers given in the provider's options */
  readonly #base: Record<string, Handler> = Object.create(null);
  readonly #registered = new Map<string, Array<{ current: Handler }>>();
  readonly #listeners = new Set<() => void>();
  #snapshot: ConnectionSnapshot;
  #holders = 0;
  #disposeTimer: ReturnType<typeof setTimeout> | undefined;
  #disposed = false;

  constructor(options: MeshClientOptions<Handlers>, readonly disposeDelayMs: number, private readonly onDisposed: () => void) {
    for (const [name, fn] of Object.entries(options.handlers ?? {})) {
      if (typeof fn === 'function') this.#base[name] = this.#handlers[name] = fn as Handler;
    }
    const update = (change: Partial<ConnectionSnapshot>) => this.#update(change);
    this.client = new MeshClient<Handlers>({
      ...options,
      handlers: this.#handlers as Handlers,
      autoConnect: false,
      onStateChange: (state, previous) => {
        update({ state, superseded: state === 'superseded', ...(state === 'connected' ? { loginRequired: undefined, updateRequired: undefined } : {}) });
        options.onStateChange?.(state, previous);
      },
      onConnected: (info) => {
        update({
          subscriptionRequired: info.subscriptionRequired, instanceName: this.client.instanceName, connections: this.#snapshot.connections + 1,
          reloaded: info.firstConnection && !info.subscriptionRequired,
        });
        options.onConnected?.(info);
      },
      onLoginRequired: (reason) => {
        update({ loginRequired: reason });
        options.onLoginRequired?.(reason);
      },
      onUpdateRequired: (reason) => {
        update({ updateRequired: reason });
        options.onUpdateRequired?.(reason);
      },
    });
    this.#snapshot = {
      state: this.client.state, subscriptionRequired: undefined, superseded: false, loginRequired: undefined, updateRequired: undefined,
      instanceName: this.client.instanceName, connections: 0, reloaded: false,
    };
    // Made during a render that may never commit: gone unless a provider mounts and holds it.
    this.#scheduleDispose();
  }

  /** The handler object the client serves calls from the mesh with. */
  get handlers(): Readonly<Record<string, Handler>> {
    return this.#handlers;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  get snapshot(): ConnectionSnapshot {
    return this.#snapshot;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  /** A mounted provider holds the client; the first hold connects it. */
  hold(): () => void {
    if (this.#disposeTimer !== undefined) clearTimeout(this.#disposeTimer);
    this.#disposeTimer = undefined;
    if (this.#holders++ === 0 && this.client.state === 'disconnected' && this.#snapshot.loginRequired === undefined && this.#snapshot.updateRequired === undefined) {
      void this.client.connect().catch(() => undefined); // failures reach onError and the state; the client retries itself
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#holders === 0) this.#scheduleDispose();
    };
  }

  /**
   * Makes `name` callable from the mesh while registered; `ref.current` is
   * read at each call, so a component updates it on render without
   * registering again. The latest registration of a name wins until it ends.
   */
  register(name: string, ref: { current: Handler }): () => void {
    const stack = this.#registered.get(name) ?? [];
    this.#registered.set(name, stack);
    stack.push(ref);
    this.#refresh(name);
    return () => {
      const index = stack.indexOf(ref);
      if (index >= 0) stack.splice(index, 1);
      if (stack.length === 0) this.#registered.delete(name);
      this.#refresh(name);
    };
  }

  /** The handler the client finds for `name`: the latest registration, else the provider's own, else none. */
  #refresh(name: string): void {
    const top = this.#registered.get(name)?.at(-1);
    if (top) {
      this.#handlers[name] = function (this: unknown, ...args: never[]) {
        return top.current.apply(this, args);
      };
    } else if (this.#base[name]) this.#handlers[name] = this.#base[name]!;
    else delete this.#handlers[name];
  }

  #update(change: Partial<ConnectionSnapshot>): void {
    const next = { ...this.#snapshot, ...change };
    if ((Object.keys(next) as Array<keyof ConnectionSnapshot>).every((key) => next[key] === this.#snapshot[key])) return;
    this.#snapshot = next;
    for (const listener of [...this.#listeners]) listener();
  }

  #scheduleDispose(): void {
    if (this.#disposed) return;
    this.#disposeTimer = setTimeout(() => {
      this.#disposeTimer = undefined;
      if (this.#holders > 0) return;
      this.#disposed = true;
      this.client.disconnect();
      this.onDisposed();
    }, this.disposeDelayMs);
  }
}

const shared = new Map<string, SharedClient<object>>();

/** The tab's client for `key`, made from `options` the first time (later options are ignored until it is disposed). */
export function sharedClient<Handlers extends object>(key: string, options: MeshClientOptions<Handlers>, disposeDelayMs: number): SharedClient<Handlers> {
  let entry = shared.get(key) as SharedClient<Handlers> | undefined;
  if (!entry) {
    entry = new SharedClient<Handlers>(options, disposeDelayMs, () => {
      if (shared.get(key) === (entry as unknown)) shared.delete(key);
    });
    shared.set(key, entry as unknown as SharedClient<object>);
  }
  return entry;
}
