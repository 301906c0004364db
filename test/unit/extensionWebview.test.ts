import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contentSecurityPolicy, makeNonce, panelHtml } from '../../extension/src/panels/html';
import { formatTick, linePath, niceTicks, scale, stepAxis } from '../../extension/webview/chart';
import { highlight, reasoningWithoutCode } from '../../extension/webview/highlight';
import { defaultTokenFile, expandHome, isLocalUrl, parseDaemonHello, parseDaemonUrl, readTokenFile, splitCommand } from '../../extension/src/daemon/endpoint';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('panel HTML: strict CSP with a nonce; nothing inline runs without it; attributes escaped', () => {
  const nonce = makeNonce();
  assert.match(nonce, /^[A-Za-z0-9]{20,}$/);
  assert.notEqual(makeNonce(), nonce);
  const csp = contentSecurityPolicy('vscode-webview://abc', nonce);
  assert.equal(csp, `default-src 'none'; style-src vscode-webview://abc; img-src vscode-webview://abc data:; font-src vscode-webview://abc; script-src 'nonce-${nonce}'`);
  assert.ok(!/unsafe-inline|unsafe-eval|https?:/.test(csp));
  const html = panelHtml({ kind: 'trajectory', cspSource: 'vscode-webview://abc', nonce, scriptUri: 'https://x/w.js?a=1&b="2"', styleUri: 's.css', title: '<t>' });
  assert.match(html, new RegExp(`<script nonce="${nonce}" src="https://x/w.js\\?a=1&amp;b=&quot;2&quot;"></script>`));
  assert.match(html, /<title>&lt;t&gt;<\/title>/);
  assert.match(html, /<body data-panel="trajectory">/);
  assert.equal((html.match(/<script/g) ?? []).length, 1);
});

test('chart ticks, scales and paths', () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(-0.37, 2.1, 5), [-0.5, 0, 0.5, 1, 1.5, 2, 2.5]);
  assert.deepEqual(niceTicks(3, 3, 4), [2.6, 2.8, 3, 3.2, 3.4]);
  assert.deepEqual(niceTicks(0, 0, 2), [-1, 0, 1]);
  assert.deepEqual(niceTicks(Number.NaN, 1), []);
  const sx = scale(0, 10, 0, 100);
  assert.equal(sx(2.5), 25);
  assert.equal(scale(5, 5, 0, 100)(5), 50);
  assert.equal(linePath([[0, 0], [1, Number.NaN], [2, 1], [3, 2]], (x) => x * 10, (y) => 100 - y * 10), 'M0,100M20,90L30,80');
  assert.equal(formatTick(0.25), '0.25');
  assert.equal(formatTick(12000), '1e4');
  assert.equal(formatTick(2500), '2.5k');
  assert.equal(formatTick(0.0001), '1e-4');
  const ax = stepAxis([{ iteration: 2, step: 1 }, { iteration: 1, step: 5 }, { iteration: 1, step: 2 }, { iteration: 1, step: 5 }]);
  assert.deepEqual([...ax.x.entries()], [['1:2', 0], ['1:5', 1], ['2:1', 2]]);
  assert.deepEqual(ax.boundaries, [{ x: 0, iteration: 1 }, { x: 2, iteration: 2 }]);
});

test('code highlighting classifies tokens and loses no character', () => {
  const code = 'x = sqrt(16) + 2.5e3 # comment\ny = "a\\"b" to cm';
  const toks = highlight(code, 'mathjs');
  assert.equal(toks.map((t) => t.text).join(''), code);
  const kind = (text: string) => toks.find((t) => t.text === text)?.kind;
  assert.equal(kind('sqrt'), 'fn');
  assert.equal(kind('16'), 'num');
  assert.equal(kind('2.5e3'), 'num');
  assert.equal(kind('# comment'), 'com');
  assert.equal(kind('"a\\"b"'), 'str');
  assert.equal(kind('to'), 'kw');
  const py = highlight('print(7 // 2)', 'python');
  assert.equal(py.find((t) => t.text === 'print')?.kind, 'kw');
  assert.ok(!py.some((t) => t.kind === 'com'), '// is floor division in Python');
  assert.equal(highlight('\u0000€', 'mathjs').map((t) => t.text).join(''), '\u0000€');
});

test('the tool call is cut out of the reasoning only when it matches', () => {
  const text = 'Compute it.\n```mathjs\n2+2\n```\nThen answer.';
  assert.equal(reasoningWithoutCode(text, '2+2'), 'Compute it.\n\nThen answer.');
  assert.equal(reasoningWithoutCode(text, '3+3'), text);
  assert.equal(reasoningWithoutCode(text, null), text);
});

test('daemon endpoint: URL checks, token file, hello line, command split', async () => {
  assert.equal(isLocalUrl('ws://127.0.0.1:8765'), true);
  assert.equal(isLocalUrl('ws://localhost:1'), true);
  assert.equal(isLocalUrl('ws://[::1]:1'), true);
  assert.equal(isLocalUrl('wss://gpu-box:8765'), false);
  assert.equal(isLocalUrl('not a url'), false);
  assert.throws(() => parseDaemonUrl('http://127.0.0.1:1'), /must start with ws:\/\//);
  assert.throws(() => parseDaemonUrl('::'), /not a URL/);
  assert.equal(defaultTokenFile({ XDG_CONFIG_HOME: '/x/cfg' }, '/home/u'), '/x/cfg/mathagent/daemon.token');
  assert.equal(defaultTokenFile({ XDG_CONFIG_HOME: '  ' }, '/home/u'), '/home/u/.config/mathagent/daemon.token');
  assert.equal(expandHome('~/t', '/h'), '/h/t');
  const dir = mkdtempSync(join(tmpdir(), 'ma-tok-'));
  writeFileSync(join(dir, 'ok'), `${'a'.repeat(64)}\n`);
  writeFileSync(join(dir, 'bad'), 'two words');
  assert.equal(await readTokenFile(join(dir, 'ok')), 'a'.repeat(64));
  assert.equal(await readTokenFile(join(dir, 'missing')), undefined);
  await assert.rejects(readTokenFile(join(dir, 'bad')), /does not hold a token/);
  assert.deepEqual(parseDaemonHello('{"url":"ws://127.0.0.1:5","tokenFile":"/t"}'), { url: 'ws://127.0.0.1:5', tokenFile: '/t' });
  assert.throws(() => parseDaemonHello('Listening on 5'), /not JSON/);
  assert.throws(() => parseDaemonHello('{"url":"ws://x"}'), /lacks url\/tokenFile/);
  assert.deepEqual(splitCommand(`npx --no-install "my mathagent" daemon --db '/a b/x.db'`), ['npx', '--no-install', 'my mathagent', 'daemon', '--db', '/a b/x.db']);
});
