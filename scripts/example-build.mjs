/**
 * Builds and runs the chat example (examples/chat): the browser bundle, the
 * Worker with the page embedded, and the Node client. Shared by `npm start`,
 * `npm run example:node` and the browser tests, so all three run the same code.
 *
 * The example imports 'meshgate' and 'meshgate/client' like a user's app
 * would; here those names resolve to this repository's sources, so no
 * `npm run build` is needed first.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bundleWorker, startWorkerd } from './workerd.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const chat = `${root}examples/chat/`;

const ENTRY_POINTS = {
  meshgate: `${root}src/index.ts`,
  'meshgate/client': `${root}src/client/index.ts`,
  'meshgate/protocol': `${root}src/protocol/index.ts`,
  'meshgate/react': `${root}src/react/index.ts`,
};

/** esbuild plugin: the package's public entry points → its sources. */
export const meshgateSources = {
  name: 'meshgate-sources',
  setup(b) {
    b.onResolve({ filter: /^meshgate(\/client|\/protocol|\/react)?$/ }, (args) => ({ path: ENTRY_POINTS[args.path] }));
  },
};

/** The page's script, one ES module for browsers. */
export async function buildBrowserApp() {
  const result = await build({
    entryPoints: [`${chat}browser/app.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    plugins: [meshgateSources],
  });
  return result.outputFiles[0].text;
}

/** The React version of the page (examples/chat-react), React in production mode unless `development` (StrictMode then double-mounts). */
export async function buildReactApp({ development = false } = {}) {
  const result = await build({
    entryPoints: [`${root}examples/chat-react/app.tsx`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    jsx: 'automatic',
    minify: !development,
    define: { 'process.env.NODE_ENV': JSON.stringify(development ? 'development' : 'production') },
    write: false,
    logLevel: 'silent',
    plugins: [meshgateSources],
  });
  return result.outputFiles[0].text;
}

/** The page and its script: the plain one (examples/chat/browser) or, with `react`, examples/chat-react. */
export async function buildPage({ react = false, development = false } = {}) {
  const [html, js] = await Promise.all(react
    ? [readFile(`${root}examples/chat-react/index.html`, 'utf8'), buildReactApp({ development })]
    : [readFile(`${chat}browser/index.html`, 'utf8'), buildBrowserApp()]);
  return { __CHAT_HTML__: JSON.stringify(html), __CHAT_JS__: JSON.stringify(js) };
}

/** The Worker script, with the page and its script embedded as strings (`react`: the React page). */
export async function buildChatWorker({ react = false } = {}) {
  return bundleWorker(`${chat}worker.ts`, { define: await buildPage({ react }), plugins: [meshgateSources] });
}

/** The Node client as one ES module at `outfile` (`ws` stays an import: it is resolved from node_modules). */
export async function buildNodeClient(outfile) {
  await build({
    entryPoints: [`${chat}node-client.ts`],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outfile,
    external: ['ws'],
    logLevel: 'silent',
    plugins: [meshgateSources],
  });
  return outfile;
}

/** What the Worker logs (`MESHGATE_LOG`): each level adds to the one before; `trace` adds Miniflare's and workerd's own log. */
export const LOG_LEVELS = ['off', 'info', 'debug', 'trace'];

/**
 * workerd's output, line by line, as Miniflare prints it — except the fatal
 * "Address already in use" exception and its stack: Miniflare turns that into
 * an ERR_ADDRESS_IN_USE error, which the caller explains in one line.
 */
function runtimeOutput(stdout, stderr) {
  createInterface({ input: stdout }).on('line', (line) => console.log(line));
  let stackFollows = false;
  createInterface({ input: stderr }).on('line', (line) => {
    const skip = /^\*\*\* Fatal uncaught kj::Exception: .*Address already in use/.test(line) || (stackFollows && line.startsWith('stack: '));
    stackFollows = skip && !line.startsWith('stack: ');
    if (!skip) console.error(line);
  });
}

/** The development secret kept in the data folder, so tokens (and the open pages using them) survive a restart. */
async function persistedSecret(dataDir) {
  const file = `${dataDir}/dev-jwt-secret`;
  const existing = await readFile(file, 'utf8').catch(() => '');
  if (existing.trim().length >= 32) return existing.trim();
  const secret = randomBytes(32).toString('base64url');
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/**
 * Builds and starts the example on embedded workerd.
 * `graceMs` shortens the grace period (tests); `secret` defaults to a random one per run,
 * or the one kept in `dataDir`. With `dataDir`, the Durable Objects' storage (rooms, messages, counters)
 * is kept there across restarts; without it, it lives in memory for this run only.
 * `logLevel` is one of LOG_LEVELS (default 'off').
 */
export async function startChat({ port = 8787, host = '127.0.0.1', graceMs, secret, dataDir, logLevel = 'off', react = false } = {}) {
  if (!LOG_LEVELS.includes(logLevel)) throw new RangeError(`logLevel must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}".`);
  const script = await buildChatWorker({ react });
  if (dataDir) await mkdir(dataDir, { recursive: true });
  return startWorkerd({
    script,
    port,
    host,
    log: logLevel === 'trace',
    durableObjects: {
      GATEWAY: 'ChatGateway',
      // The room keeps messages and subscriptions in SQLite (in wrangler: a `new_sqlite_classes` migration).
      ROOM: { className: 'ChatRoom', useSQLite: true },
      // The assistant stores nothing: a plain Durable Object that streams replies.
      ASSISTANT: 'ChatAssistant',
      IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true },
    },
    bindings: {
      JWT_SECRET: secret ?? (dataDir ? await persistedSecret(dataDir) : randomBytes(32).toString('base64url')),
      MESHGATE_LOG: logLevel,
      ...(graceMs === undefined ? {} : { GRACE_MS: String(graceMs) }),
    },
    miniflare: {
      handleRuntimeStdio: runtimeOutput,
      ...(dataDir ? { durableObjectsPersist: `${dataDir}/durable-objects` } : {}),
    },
  });
}
