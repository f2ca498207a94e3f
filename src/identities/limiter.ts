/**
 * IdentityLimiter: one small SQLite-backed Durable Object per `sub` (named by
 * the sub) that caps how many identities (`{sub}.{tabId}` gateways) the user
 * has live at once. The edge asks it before routing an upgrade; a gateway
 * tells it when its grace period ends. A lost "release" cannot leak a slot:
 * at the cap, listed gateways are asked whether they are still live and the
 * dead ones are dropped. It holds no timer or promise once an answer is given.
 */
import { DurableObject } from 'cloudflare:workers';
import { isNamespace, type Namespace } from '../bindings/kinds.js';

/** What the limiter asks a gateway; ClientGateway answers it. */
export interface LivenessProbe {
  __meshgateIsLive(): Promise<boolean>;
}

export interface Admission {
  admitted: boolean;
  /** identities counted live after this decision */
  live: number;
}

export interface IdentityLimiterConfig {
  /**
   * An identity admitted this recently is never dropped, by a probe or a
   * release: its upgrade may still be on its way to the gateway.
   */
  pendingMs: number;
  /** A gateway that answered "live" is not asked again for this long (bounds probes when a user sits at the cap). */
  recheckMs: number;
  /** A gateway that does not answer a probe within this long counts as live this time. */
  probeTimeoutMs: number;
}

interface Row extends Record<string, SqlStorageValue> {
  instance: string;
  gateway: string;
  /** when it was last admitted (Date.now()) */
  seen_at: number;
  /** bumped by every admit, so a probe's verdict applies only to the row it probed */
  version: number;
  checked_at: number;
}

export class IdentityLimiter<Env = unknown> extends DurableObject<Env> {
  /** Override in a subclass (or assign in its constructor) to change timings. */
  protected config: IdentityLimiterConfig = { pendingMs: 10_000, recheckMs: 10_000, probeTimeoutMs: 2_000 };

  /** One probe round at a time: a storm of upgrades at the cap shares it. */
  #probing: Promise<void> | undefined;

  /**
   * Admits `instance` (`{sub}.{tabId}`, reached through the gateway binding
   * `gateway`; counted by name, whichever gateway binding) if it is already counted — a reconnect or a supersession — or if fewer than `max`
   * are live. The count and the insert run with no await between them, so
   * concurrent upgrades cannot pass the cap together.
   */
  async admit(instance: string, gateway: string, max: number): Promise<Admission> {
    if (typeof instance !== 'string' || typeof gateway !== 'string' || !Number.isInteger(max) || max < 1) {
      throw new TypeError('IdentityLimiter.admit(instance, gateway, max): strings and a positive integer expected.');
    }
    const first = this.#tryAdmit(instance, gateway, max);
    if (first.admitted) return first;
    await (this.#probing ??= this.#dropDead().finally(() => (this.#probing = undefined)));
    return this.#tryAdmit(instance, gateway, max);
  }

  /** A gateway's grace period ended: its identity is no longer live. */
  async release(instance: string): Promise<void> {
    if (typeof instance !== 'string') return;
    this.#table();
    this.ctx.storage.sql.exec('DELETE FROM identities WHERE instance = ? AND seen_at <= ?', instance, Date.now() - this.config.pendingMs);
    await this.#forgetIfEmpty();
  }

  /** Identities counted now (for monitoring and tests). */
  async live(): Promise<string[]> {
    this.#table();
    return this.ctx.storage.sql.exec<Row>('SELECT instance FROM identities ORDER BY instance').toArray().map((row) => row.instance);
  }

  #tryAdmit(instance: string, gateway: string, max: number): Admission {
    this.#table();
    const sql = this.ctx.storage.sql;
    const now = Date.now();
    const listed = sql.exec('UPDATE identities SET seen_at = ?, version = version + 1, gateway = ? WHERE instance = ?', now, gateway, instance).rowsWritten > 0;
    const live = this.#count();
    if (listed) return { admitted: true, live };
    if (live >= max) return { admitted: false, live };
    sql.exec('INSERT INTO identities (gateway, instance, seen_at, version, checked_at) VALUES (?, ?, ?, 0, 0)', gateway, instance, now);
    return { admitted: true, live: live + 1 };
  }

  /** Asks every listed gateway not admitted or checked lately whether it is live, and drops the ones that are not. */
  async #dropDead(): Promise<void> {
    const sql = this.ctx.storage.sql;
    const now = Date.now();
    const due = sql.exec<Row>('SELECT * FROM identities WHERE seen_at <= ? AND checked_at <= ?', now - this.config.pendingMs, now - this.config.recheckMs).toArray();
    const answers = await Promise.all(due.map((row) => this.#isLive(row)));
    due.forEach((row, i) => {
      // Only the row as it was probed: one re-admitted meanwhile has a newer version and stays.
      const where = 'instance = ? AND version = ?';
      if (answers[i]) sql.exec(`UPDATE identities SET checked_at = ? WHERE ${where}`, now, row.instance, row.version);
      else sql.exec(`DELETE FROM identities WHERE ${where}`, row.instance, row.version);
    });
    await this.#forgetIfEmpty();
  }

  async #isLive(row: Row): Promise<boolean> {
    const binding = (this.env as Record<string, unknown>)[row.gateway];
    if (!isNamespace(binding)) return false; // that gateway binding no longer exists
    const namespace = binding as Namespace<LivenessProbe>;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.config.probeTimeoutMs)));
      return await Promise.race([namespace.get(namespace.idFromName(row.instance)).__meshgateIsLive(), timeout]);
    } catch {
      return true; // cannot tell now (the gateway is resetting): ask again after recheckMs
    } finally {
      clearTimeout(timer);
    }
  }

  #count(): number {
    return this.ctx.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM identities').one().n;
  }

  #table(): void {
    this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS identities (instance TEXT PRIMARY KEY, gateway TEXT NOT NULL, seen_at INTEGER NOT NULL, version INTEGER NOT NULL, checked_at INTEGER NOT NULL)');
  }

  /** A user with nothing live leaves nothing stored. */
  async #forgetIfEmpty(): Promise<void> {
    if (this.#count() === 0) await this.ctx.storage.deleteAll();
  }
}
