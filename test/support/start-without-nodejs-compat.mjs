// Starts the test fixture on workerd without nodejs_compat; its output is read by setup-errors.test.ts.
import { startWorkerd } from '../../scripts/workerd.mjs';

try {
  const mesh = await startWorkerd({ entry: new URL('../fixtures/worker.ts', import.meta.url).pathname, durableObjects: { GATEWAY: 'TestGateway' }, compatibilityFlags: [] });
  console.log('started');
  await mesh.dispose();
} catch (error) {
  console.log(`failed to start: ${error.message}`);
  process.exit(0); // Miniflare keeps the event loop alive after a failed start
}
