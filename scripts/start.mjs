/**
 * `npm start`: builds the chat example and serves it on embedded workerd at
 * http://127.0.0.1:$PORT (default 8787) until interrupted.
 *
 *   npm start                 rooms, messages and counters kept in .meshgate-data/ across restarts
 *   npm start -- --fresh      forget them first (start clean)
 *   npm start -- --react      the React version of the page (examples/chat-react)
 *
 * Environment: PORT; MESHGATE_LOG = off | info (default: connections, refusals) | debug (+ every call)
 * | trace (+ Miniflare's and workerd's own log); MESHGATE_DATA_DIR (default .meshgate-data).
 */
import { rm } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LOG_LEVELS, startChat } from './example-build.mjs';

function fail(message) {
  console.error(message);
  process.exit(1);
}

let args;
try {
  args = parseArgs({ options: { fresh: { type: 'boolean', default: false }, react: { type: 'boolean', default: false } }, strict: true }).values;
} catch (error) {
  fail(`${error.message}. Usage: npm start [-- --fresh] [--react]`);
}

const port = Number(process.env.PORT ?? 8787);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`PORT must be a port number, got "${process.env.PORT}".`);
const logLevel = process.env.MESHGATE_LOG || 'info';
if (!LOG_LEVELS.includes(logLevel)) fail(`MESHGATE_LOG must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}".`);

const root = fileURLToPath(new URL('..', import.meta.url));
const dataDir = resolve(root, process.env.MESHGATE_DATA_DIR || '.meshgate-data');
const nearby = relative(process.cwd(), dataDir);
const shownDir = nearby && !nearby.startsWith('..') ? nearby : dataDir;
if (args.fresh) {
  // Only what startChat writes there: the folder may be one the user chose and shares with other files.
  await rm(`${dataDir}/durable-objects`, { recursive: true, force: true });
  await rm(`${dataDir}/dev-jwt-secret`, { force: true });
}

let server;
try {
  server = await startChat({ port, host: '127.0.0.1', dataDir, logLevel, react: args.react });
} catch (error) {
  const busy = error?.code === 'ERR_ADDRESS_IN_USE' || /EADDRINUSE|address already in use/i.test(String(error?.message ?? error));
  fail(busy ? `Port ${port} is in use (another npm start?); stop it, or try PORT=${port + 1} npm start.` : `Could not start the example: ${error?.stack ?? error}`);
}

const url = server.url.origin;
console.log(`meshgate chat example running at ${url}`);
console.log(`  open ${url} in two browser windows, or join from a terminal: npm run example:node -- --name bob --url ${url}`);
console.log(`  rooms are kept in ${shownDir}/${args.fresh ? ' (started clean)' : ' (npm start -- --fresh starts clean)'}`);
console.log(`  log level ${logLevel} (MESHGATE_LOG=off|info|debug|trace); press Ctrl+C to stop`);

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
