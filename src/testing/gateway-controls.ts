/**
 * Test controls inside a gateway. meshgate/testing bundles the app's Worker
 * with an entry that replaces each gateway class by `testable(Gateway)`; the
 * production bundle never contains this module, so the control route below
 * does not exist there. Even in a test bundle it answers only requests that
 * carry this run's random key (the edge strips every x-meshgate-* header
 * from client requests, so no client can send one).
 *
 * Runs in workerd: no Node import here.
 */
import type { ClientGateway } from '../gateway/client-gateway.js';
import { defaultGatewayConfig, type GatewayConfig } from '../gateway/config.js';
import { safeClose } from '../gateway/sockets.js';

export const CONTROL_HEADER = 'x-meshgate-testing-key';
/** The binding that carries the run's key into the Worker. */
export const CONTROL_KEY_BINDING = 'MESHGATE_TESTING_KEY';
export const CONTROL_ORIGIN = 'http://meshgate-testing.invalid';

/** What a test reads from a gateway. */
export interface GatewaySnapshot {
  /** derived as the gateway derives it: an open socket, else a pending grace alarm, else nothing */
  state: 'connected' | 'gracePeriod' | 'disconnected';
  /** sockets workerd still lists (closing ones linger) and how many of them are open */
  sockets: number;
  open: number;
  /** when the grace period ends (ms since the epoch), or null */
  graceEndsAt: number | null;
  /** mesh → client calls waiting for the client's answer */
  waitingCalls: number;
  /** sizes of the gateway's in-memory maps */
  memory: Record<string, number>;
}

export type GatewaySettings = Partial<Pick<GatewayConfig, 'gracePeriodMs' | 'clientResponseTimeoutMs'>>;

type GatewayClass = abstract new (ctx: DurableObjectState, env: unknown) => ClientGateway;

/** Is this export a ClientGateway subclass? (Checked by its internal RPC entry, so no second copy of meshgate is needed.) */
function isGatewayClass(value: unknown): value is GatewayClass {
  return typeof value === 'function' && typeof (value.prototype as { __meshgateCallClient?: unknown })?.__meshgateCallClient === 'function';
}

/** The app's gateway class with test settings and the control route; any other export unchanged. */
export function testable<T>(exported: T, settings: GatewaySettings): T {
  if (!isGatewayClass(exported)) return exported;
  const Base = exported as unknown as new (ctx: DurableObjectState, env: unknown) => ClientGateway;
  class TestableGateway extends Base {
    readonly #key: string | undefined;

    constructor(ctx: DurableObjectState, env: unknown) {
      super(ctx, env);
      // Only where the app kept the library's default: a value the app's gateway chose itself (for some instances, say) stands.
      const defaults = defaultGatewayConfig();
      for (const [name, value] of Object.entries(settings) as Array<[keyof GatewaySettings, number]>) {
        if (this.config[name] === defaults[name]) this.config[name] = value;
      }
      this.#key = (env as Record<string, string | undefined>)[CONTROL_KEY_BINDING];
    }

    override async fetch(request: Request): Promise<Response> {
      const url = new URL(request.url);
      const key = request.headers.get(CONTROL_HEADER);
      if (url.origin !== CONTROL_ORIGIN || !this.#key || key !== this.#key) return super.fetch(request);
      try {
        return Response.json(await this.#control(url.pathname));
      } catch (error) {
        return Response.json({ error: String((error as Error)?.message ?? error) }, { status: 409 });
      }
    }

    async #control(action: string): Promise<unknown> {
      switch (action) {
        case '/state': return this.#snapshot();
        case '/end-grace-period': {
          const before = await this.#snapshot();
          if (before.state === 'connected') throw new Error('endGracePeriod: the client is connected (no grace period to end); drop or cut its socket first.');
          // What the alarm does when it fires: calls to the client fail, its memory goes.
          await this.ctx.storage.deleteAlarm();
          await this.alarm();
          return this.#snapshot();
        }
        case '/expire-token': {
          const open = this.#openSockets();
          if (open.length === 0) throw new Error('expireToken: no open socket to expire.');
          // As the gateway does when it finds the token expired: close with 4401; the client refreshes and reconnects.
          for (const ws of open) safeClose(ws, 4401, 'Token expired');
          return this.#snapshot();
        }
        default: throw new Error(`unknown test control ${action}`);
      }
    }

    #openSockets(): WebSocket[] {
      return this.ctx.getWebSockets().filter((ws) => ws.readyState === 1
        && (ws.deserializeAttachment() as { closedByGateway?: boolean } | null)?.closedByGateway !== true);
    }

    async #snapshot(): Promise<GatewaySnapshot> {
      const open = this.#openSockets().length;
      const alarm = await this.ctx.storage.getAlarm();
      const memory = this.memoryStats();
      return {
        state: open > 0 ? 'connected' : alarm !== null ? 'gracePeriod' : 'disconnected',
        sockets: this.ctx.getWebSockets().length, open, graceEndsAt: alarm, waitingCalls: memory.waiting, memory,
      };
    }
  }
  return TestableGateway as unknown as T;
}
