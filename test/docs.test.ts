/**
 * Every TypeScript (and TSX) example in the README and docs/ compiles against the real
 * API, and every wrangler.jsonc example parses. A block whose first line is
 * `// file: NAME.ts` is written under that name, so later blocks of the same
 * page can import it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

function blocks(markdown: string, lang: string): string[] {
  const found: string[] = [];
  const re = new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g');
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) found.push(m[1]!);
  return found;
}

it('every ts example in the docs type-checks', () => {
  const out = join(root, '.tmp/docs-check');
  rmSync(out, { recursive: true, force: true });
  let count = 0;
  for (const page of pages) {
    const dir = join(out, page.replace(/[/.]/g, '_'));
    mkdirSync(dir, { recursive: true });
    for (const ext of ['ts', 'tsx']) {
      blocks(readFileSync(join(root, page), 'utf8'), ext).forEach((code, i) => {
        const name = new RegExp(`^// file: ([\\w.-]+\\.${ext})`).exec(code)?.[1] ?? `snippet-${i}.${ext}`;
        writeFileSync(join(dir, name), `${code}\nexport {};\n`);
        count++;
      });
    }
  }
  writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', strict: true, noEmit: true, skipLibCheck: true, jsx: 'react-jsx',
      lib: ['ES2023', 'DOM'], types: ['@cloudflare/workers-types', 'node'], typeRoots: [join(root, 'node_modules/@types'), join(root, 'node_modules')],
      baseUrl: root,
      paths: { meshgate: ['src/index.ts'], 'meshgate/client': ['src/client/index.ts'], 'meshgate/protocol': ['src/protocol/index.ts'],
        'meshgate/testing': ['src/testing/index.ts'], 'meshgate/react': ['src/react/index.ts'], ws: ['node_modules/@types/ws'] },
    },
    include: ['./**/*.ts', './**/*.tsx'],
  }));
  expect(count).toBeGreaterThan(8);
  let output = '';
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(out, 'tsconfig.json')], { encoding: 'utf8' });
  } catch (error) {
    output = String((error as { stdout?: string }).stdout ?? error);
  }
  expect(output).toBe('');
}, 120_000);

it('every wrangler.jsonc example parses and declares a migration for each Durable Object class', () => {
  let count = 0;
  for (const page of pages) {
    for (const code of blocks(readFileSync(join(root, page), 'utf8'), 'jsonc')) {
      const config = JSON.parse(code.replace(/\/\/.*$/gm, '')) as {
        durable_objects?: { bindings: Array<{ class_name: string }> };
        migrations?: Array<{ new_sqlite_classes?: string[]; new_classes?: string[] }>;
      };
      const classes = (config.durable_objects?.bindings ?? []).map((b) => b.class_name);
      const migrated = (config.migrations ?? []).flatMap((m) => [...(m.new_sqlite_classes ?? []), ...(m.new_classes ?? [])]);
      for (const c of classes) expect(migrated, `${page}: ${c}`).toContain(c);
      count++;
    }
  }
  expect(count).toBeGreaterThan(1);
});
