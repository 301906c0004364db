import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', 'extension');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('extension manifest: every contributed command is registered, every registered command is contributed, menus name known commands', () => {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    contributes: { commands: Array<{ command: string }>; menus: Record<string, Array<{ command: string }>> };
  };
  const contributed = new Set(manifest.contributes.commands.map((c) => c.command));
  const registered = new Set<string>();
  for (const f of sources(join(root, 'src'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/(?:\breg|registerCommand)\('(mathagent\.[A-Za-z.]+)'/g)) registered.add(m[1]!);
  }
  assert.ok(registered.has('mathagent.deleteRun') && registered.has('mathagent.stopRun'), 'the scan finds the registrations');
  assert.deepEqual([...contributed].filter((c) => !registered.has(c)), [], 'contributed but never registered');
  assert.deepEqual([...registered].filter((c) => !contributed.has(c) && !c.endsWith('.focus')), [], 'registered but not in contributes.commands');
  for (const [menu, items] of Object.entries(manifest.contributes.menus)) {
    for (const it of items) assert.ok(contributed.has(it.command), `${menu} names unknown command ${it.command}`);
  }
});
