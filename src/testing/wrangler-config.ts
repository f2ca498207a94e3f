/** Reads a wrangler config the way wrangler dev does (its own reader), for the test mesh. */
import type { MiniflareOptions } from 'miniflare';

export interface WranglerWorker {
  main: string;
  durableObjects: Record<string, { className: string; useSQLite?: boolean }>;
  workerOptions: Partial<MiniflareOptions> & Record<string, unknown>;
  define: Record<string, string>;
}

export async function readWranglerConfig(path: string): Promise<WranglerWorker> {
  let wrangler: { unstable_getMiniflareWorkerOptions(path: string): { workerOptions: Record<string, unknown>; main?: string; define: Record<string, string> } };
  try {
    wrangler = (await import('wrangler')) as unknown as typeof wrangler;
  } catch {
    throw new Error('meshgate/testing: reading a wrangler config needs wrangler installed (npm install -D wrangler), or pass `worker` and `durableObjects` instead.');
  }
  const { workerOptions, main, define } = wrangler.unstable_getMiniflareWorkerOptions(path);
  if (!main) throw new Error(`meshgate/testing: ${path} has no "main" entry.`);
  // The test mesh bundles the entry itself; wrangler's module rules would ask Miniflare to load files instead.
  const { modulesRules: _rules, durableObjects = {}, ...rest } = workerOptions;
  return { main, durableObjects: durableObjects as WranglerWorker['durableObjects'], workerOptions: rest as WranglerWorker['workerOptions'], define };
}
