/**
 * `npm start`: builds the chat example and serves it on embedded workerd at
 * http://127.0.0.1:$PORT (default 8787) until interrupted.
 */
import { startChat } from './example-build.mjs';

const port = Number(process.env.PORT ?? 8787);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a port number, got "${process.env.PORT}".`);
  process.exit(1);
}

let server;
try {
  server = await startChat({ port, host: '127.0.0.1', log: process.env.MESHGATE_LOG === '1' });
} catch (error) {
  const busy = /EADDRINUSE|address already in use/i.test(String(error?.message ?? error));
  console.error(busy ? `Port ${port} is in use; try PORT=8788 npm start.` : `Could not start the example: ${error?.stack ?? error}`);
  process.exit(1);
}

const url = server.url.origin;
console.log(`meshgate chat example running at ${url}`);
console.log(`  open ${url} in two browser windows, or join from a terminal: npm run example:node -- --name bob --url ${url}`);
console.log('  press Ctrl+C to stop');

// Miniflare's own signal hook kills workerd and exits at once (code 130/143).
// Replace it so dispose() runs and shuts down cleanly; Miniflare's 'exit'
// hook stays as a backstop, and a second signal exits without waiting.
for (const signal of ['SIGINT', 'SIGTERM']) process.removeAllListeners(signal);

let stopping = false;
async function stop(signal) {
  if (stopping) process.exit(1);
  stopping = true;
  console.log(`\n${signal}: stopping workerd…`);
  try {
    await server.dispose();
    console.log('stopped.');
    process.exit(0);
  } catch (error) {
    console.error(`workerd did not stop cleanly: ${error?.message ?? error}`);
    process.exit(1);
  }
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
