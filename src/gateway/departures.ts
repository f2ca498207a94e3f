/**
 * Departures: nodes that asked to be told when this gateway's client is gone
 * for good (its grace period ended without a reconnect), so presence can
 * drop it within moments instead of waiting for a fan-out to fail.
 *
 * While a socket is open the list lives in the socket's attachment (it
 * survives hibernation and costs no storage); when the last socket drops it
 * moves to storage beside the grace alarm; the alarm tells every watcher and
 * deletes it, a reconnect inside the grace period takes it back.
 */
import { LimitExceededError } from '../protocol/errors.js';
import { isNamespace, type Namespace } from '../bindings/kinds.js';
import type { GatewaySockets, SocketInfo } from './sockets.js';

/** A Durable Object to tell, as the mesh addresses it. */
export interface DepartureWatcher {
  binding: string;
  instance: string;
}

/** What a node exposes to be told (MeshDurableObject has it). */
interface DepartureStub {
  __meshgateClientGone(instanceName: string, at: number): Promise<void>;
}

const STORAGE_KEY = 'meshgate:departures';
/** Watchers per client: each is one RPC when it leaves, and they share the socket attachment's 16 KiB with the token's claims. */
export const MAX_DEPARTURE_WATCHERS = 16;
const MAX_NAME_LENGTH = 128;

/** A watcher from a node, checked: two short strings. */
export function checkWatcher(value: unknown): DepartureWatcher {
  const { binding, instance } = (value ?? {}) as Partial<DepartureWatcher>;
  if (typeof binding !== 'string' || typeof instance !== 'string' || !binding || !instance || binding.length > MAX_NAME_LENGTH || instance.length > MAX_NAME_LENGTH) {
    throw new TypeError(`A departure watcher is { binding, instance }: two strings of 1 to ${MAX_NAME_LENGTH} characters.`);
  }
  return { binding, instance };
}

/** `list` with `watcher` added once; refuses past MAX_DEPARTURE_WATCHERS. */
export function withWatcher(list: readonly DepartureWatcher[] | undefined, watcher: DepartureWatcher): DepartureWatcher[] {
  const current = list ?? [];
  if (current.some((w) => w.binding === watcher.binding && w.instance === watcher.instance)) return [...current];
  if (current.length >= MAX_DEPARTURE_WATCHERS) {
    throw new LimitExceededError('maxDepartureWatchers', MAX_DEPARTURE_WATCHERS,
      'this client is watched by that many Durable Objects (e.g. presence in that many rooms); leave one first.');
  }
  return [...current, watcher];
}

/** The union of several lists, first seen first, bounded. */
export function mergeWatchers(lists: Array<readonly DepartureWatcher[] | undefined>): DepartureWatcher[] {
  let merged: DepartureWatcher[] = [];
  for (const list of lists) for (const watcher of list ?? []) {
    try {
      merged = withWatcher(merged, watcher);
    } catch {
      return merged;
    }
  }
  return merged;
}

/** The gateway's side: where the list is kept as the client comes and goes, and telling the watchers at the end. */
export class Departures {
  readonly #storage: DurableObjectStorage;
  readonly #sockets: GatewaySockets;
  /** What storage holds, as this incarnation knows it; undefined: not known yet (a fresh incarnation, maybe after an eviction). */
  #known: DepartureWatcher[] | undefined;

  constructor(storage: DurableObjectStorage, sockets: GatewaySockets) {
    this.#storage = storage;
    this.#sockets = sockets;
  }

  /** A node asks to be told. True: it will be; false: the client is already gone (no socket, no grace period). */
  async watch(value: unknown): Promise<boolean> {
    const watcher = checkWatcher(value);
    const active = this.#sockets.active();
    if (active) {
      const info = this.#sockets.info(active)!;
      if (!this.#sockets.update(active, { ...info, departures: withWatcher(info.departures, watcher) })) {
        throw new LimitExceededError('maxDepartureWatchers', info.departures?.length ?? 0,
          'the socket attachment (16 KiB, shared with the token\'s claims) is full; use shorter instance names or fewer claims.');
      }
      return true;
    }
    if ((await this.#storage.getAlarm()) === null) return false;
    this.#keep(withWatcher(await this.#stored(), watcher));
    return true;
  }

  /** A node no longer needs to be told (the client left it). */
  async unwatch(value: unknown): Promise<void> {
    const { binding, instance } = checkWatcher(value);
    const keep = (list: readonly DepartureWatcher[] | undefined) => (list ?? []).filter((w) => w.binding !== binding || w.instance !== instance);
    const active = this.#sockets.active();
    if (active) {
      const info = this.#sockets.info(active)!;
      this.#sockets.update(active, { ...info, departures: keep(info.departures) });
    } else if ((await this.#storage.getAlarm()) !== null) {
      this.#keep(keep(await this.#stored()));
    }
  }

  /** The list kept in storage during a grace period (read before an upgrade inside one). */
  stored(): Promise<DepartureWatcher[]> {
    return this.#stored();
  }

  /** What a new socket carries on: the lists of the sockets it supersedes, and `stored` after a reconnect inside the grace period. */
  carried(superseded: readonly WebSocket[], stored: readonly DepartureWatcher[]): DepartureWatcher[] {
    return mergeWatchers([...superseded.map((ws) => this.#sockets.info(ws)?.departures), stored]);
  }

  /** `info` with `list`, if it still fits a socket attachment; else without (those watchers find out at their next fan-out). */
  static fit(probe: WebSocket, info: SocketInfo, list: DepartureWatcher[]): SocketInfo {
    if (list.length === 0) return info;
    const withList = { ...info, departures: list };
    try {
      probe.serializeAttachment(withList);
      return withList;
    } catch {
      return info;
    }
  }

  /** The client is back inside its grace period: the new socket carries the list, storage forgets it. */
  reconnected(): void {
    this.#keep([]);
  }

  /** The last socket dropped: keep its list beside the grace alarm (not awaited: the output gate holds replies until it is durable). */
  dropped(ws: WebSocket): void {
    // Nothing else is stored when a grace period starts: the last one ended with a reconnect or the alarm, and both delete it.
    const list = this.#sockets.info(ws)?.departures ?? [];
    if (list.length > 0) void this.#storage.put(STORAGE_KEY, list);
    this.#known = list;
  }

  /** The grace period ended: tells every watcher and forgets them. A watcher that fails is skipped (it finds out at its next fan-out). */
  async departed(env: unknown, instanceName: string): Promise<void> {
    const watchers = await this.#stored();
    if (watchers.length === 0) return;
    this.#keep([]);
    const at = Date.now();
    await Promise.allSettled(watchers.map(async ({ binding, instance }) => {
      const namespace = (env as Record<string, unknown> | undefined)?.[binding];
      if (!isNamespace(namespace)) return;
      const ns = namespace as Namespace<DepartureStub>;
      await ns.get(ns.idFromName(instance)).__meshgateClientGone(instanceName, at);
    }));
  }

  async #stored(): Promise<DepartureWatcher[]> {
    this.#known ??= (await this.#storage.get<DepartureWatcher[]>(STORAGE_KEY)) ?? [];
    return this.#known;
  }

  /** Stores `list` (deletes the key for an empty one), without a write when nothing changes (not awaited: the output gate holds replies). */
  #keep(list: DepartureWatcher[]): void {
    if (list.length > 0) void this.#storage.put(STORAGE_KEY, list);
    else if (this.#known === undefined || this.#known.length > 0) void this.#storage.delete(STORAGE_KEY);
    this.#known = list;
  }
}
