/**
 * The two ends of the identity cap outside the limiter: the edge asks before
 * routing an upgrade, a gateway reports when its identity ends. Both find the
 * limiter of a user by its binding and the user's `sub`.
 */
import { WS_CLOSE_INTERNAL, WS_CLOSE_TOO_MANY_CONNECTIONS } from '../protocol/close-codes.js';
import { isNamespace, type Namespace } from '../bindings/kinds.js';
import type { Admission, IdentityLimiter } from './limiter.js';

export const DEFAULT_IDENTITY_LIMITER_BINDING = 'IDENTITY_LIMITER';
export const DEFAULT_MAX_IDENTITIES_PER_SUB = 32;

export interface IdentityLimitOptions<Env> {
  /** The IdentityLimiter Durable Object binding (default 'IDENTITY_LIMITER'); gateways release through the same name (GatewayConfig.identityLimiterBinding). */
  binding?: string;
  /** Live identities (connected or in their grace period) one `sub` may have (default 32). */
  maxPerSub?: number | ((env: Env) => number | undefined);
}

export interface Refusal {
  code: number;
  reason: string;
}

type LimiterStub = Pick<IdentityLimiter, 'admit' | 'release'>;

function limiterFor(env: unknown, binding: string, sub: string): LimiterStub | undefined {
  const namespace = (env as Record<string, unknown> | undefined)?.[binding];
  if (!isNamespace(namespace)) return undefined;
  const ns = namespace as Namespace<LimiterStub>;
  return ns.get(ns.idFromName(sub));
}

/** Logged once per isolate, so a deployment without the binding says so without flooding its logs. */
let warnedUnbound = false;
let lastFailureLog = 0;

/** Undefined: admitted. Otherwise the close code and reason to refuse the upgrade with. */
export async function admitIdentity<Env>(
  options: IdentityLimitOptions<Env> | false | undefined, env: Env, identity: { sub: string; instanceName: string; gateway: string },
): Promise<Refusal | undefined> {
  if (options === false) return undefined;
  const binding = options?.binding ?? DEFAULT_IDENTITY_LIMITER_BINDING;
  const limiter = limiterFor(env, binding, identity.sub);
  if (!limiter) {
    if (!warnedUnbound) {
      warnedUnbound = true;
      console.warn(`meshgate: no "${binding}" Durable Object binding, so live identities per user are not capped. `
        + 'Export IdentityLimiter from your Worker and bind it (see docs/deploying.md), or pass identities: false to createMeshWorker to silence this.');
    }
    return undefined;
  }
  const configured = typeof options?.maxPerSub === 'function' ? options.maxPerSub(env) : options?.maxPerSub;
  const max = configured ?? DEFAULT_MAX_IDENTITIES_PER_SUB;
  let admission: Admission;
  try {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`identities.maxPerSub must be a positive integer, got ${String(max)}`);
    admission = await limiter.admit(identity.instanceName, identity.gateway, max);
  } catch (error) {
    // The client backs off and retries on 1011; one log line a minute at most, whatever the rate of upgrades.
    if (Date.now() - lastFailureLog > 60_000) {
      lastFailureLog = Date.now();
      console.error('meshgate: cannot check live identities per user:', error);
    }
    return { code: WS_CLOSE_INTERNAL, reason: 'Cannot check the connection limit now; retry later' };
  }
  if (admission.admitted) return undefined;
  return { code: WS_CLOSE_TOO_MANY_CONNECTIONS, reason: `Too many open tabs or devices for this user (limit ${max}): close some, then retry` };
}

/** A gateway's identity ended (grace period over). Failing is harmless: the limiter finds dead gateways itself at the cap. */
export async function releaseIdentity(env: unknown, binding: string, instanceName: string | undefined): Promise<void> {
  if (!instanceName) return; // the runtime did not tell the gateway its name
  const dot = instanceName.lastIndexOf('.');
  if (dot <= 0) return;
  try {
    await limiterFor(env, binding, instanceName.slice(0, dot))?.release(instanceName);
  } catch {
    // the limiter drops this identity at its next probe
  }
}
