// Starts a Worker on workerd that is expected to fail to load; its output is read by setup-errors.test.ts.
// Usage: node start-failing-worker.mjs <entry> [compatibility flags, comma-separated; "none" for none]
import { startWorkerd } from '../../scripts/workerd.mjs';

const [entry, flags] = process.argv.slice(2);
try {
  const mesh = await startWorkerd({ entry, durableObjects: { GATEWAY: 'TestGateway' }, ...(flags ? { compatibilityFlags: flags === 'none' ? [] : flags.split(',') } : {}) });
  console.log('started');
  await mesh.dispose();
} catch (error) {
  console.log(`failed to start: ${error.message}`);
  process.exit(0); // Miniflare keeps the event loop alive after a failed start
}
