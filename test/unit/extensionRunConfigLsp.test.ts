import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMessageConnection } from 'vscode-jsonrpc/node';
import { complete, diagnose, editDistance, hover, type HostProbe } from '../../daemon/src/lsp/analysis';
import { parseJson, positionAt, rangeForPath } from '../../daemon/src/lsp/jsonRanges';
import { fieldInfo } from '../../daemon/src/lsp/schemaInfo';
import { NotificationReader, NotificationWriter } from '../../daemon/src/lsp/transport';
import { createSession, register } from '../../daemon/src/lsp/index';

const DOC = '{\n  "algorithm": "ppo",\n  "train": { "beta": -1, "lrr": 0.1 },\n  "data": { "dataset": "math" }\n}\n';
const at = (s: string, needle: string, from = 0) => { const i = s.indexOf(needle, from); assert.ok(i >= 0, needle); return i; };
const probe = (extra: Partial<HostProbe> = {}): HostProbe => ({ name: 'gpu1', datasets: () => ['synthetic', 'gsm8k'], backends: () => ['wasm', 'cpu'], checkpointExists: () => false, ...extra });

test('JSON path → range: values, missing keys fall back to the parent key, unknown keys on the key', () => {
  const { root } = parseJson(DOC);
  const beta = at(DOC, '-1');
  assert.deepEqual(rangeForPath(root, ['train', 'beta']), { start: beta, end: beta + 2 });
  const train = at(DOC, '"train"');
  assert.deepEqual(rangeForPath(root, ['train', 'warmupSteps']), { start: train, end: train + 7 });
  const lrr = at(DOC, '"lrr"');
  assert.deepEqual(rangeForPath(root, ['train', 'lrr'], true), { start: lrr, end: lrr + 5 });
  assert.deepEqual(rangeForPath(root, ['nothing', 'here']), { start: 0, end: 1 });
  assert.deepEqual(rangeForPath(undefined, ['x']), { start: 0, end: 0 });
  assert.deepEqual(positionAt(DOC, beta), { line: 2, character: DOC.split('\n')[2]!.indexOf('-1') });
  assert.deepEqual(positionAt('a\r\nb', 3), { line: 1, character: 0 });
});

test('diagnostics: schema errors at their paths, unknown keys with a suggestion, host checks', async () => {
  const d = await diagnose(DOC, probe());
  const by = (code: string) => d.filter((x) => x.code === code);
  const schema = by('schema');
  const algo = schema.find((x) => x.message.startsWith('algorithm:'))!;
  assert.equal(DOC.slice(algo.range.start, algo.range.end), '"ppo"');
  const beta = schema.find((x) => x.message.startsWith('train.beta:'))!;
  assert.equal(DOC.slice(beta.range.start, beta.range.end), '-1');
  const unknown = by('unknown-key');
  assert.equal(unknown.length, 1);
  assert.match(unknown[0]!.message, /unknown key "lrr" in train — did you mean "lr"\?/);
  assert.equal(DOC.slice(unknown[0]!.range.start, unknown[0]!.range.end), '"lrr"');
  const ds = by('host-dataset')[0]!;
  assert.match(ds.message, /dataset "math" is not available on the daemon host gpu1 \(available: synthetic, gsm8k\)/);
  assert.equal(DOC.slice(ds.range.start, ds.range.end), '"math"');
});

test('diagnostics: backend and checkpoint the host lacks; a valid config is clean', async () => {
  const text = '{"backend": "webgpu", "model": {"init": "ckpt/best"}}';
  const d = await diagnose(text, probe());
  assert.deepEqual(d.map((x) => x.code).sort(), ['host-backend', 'host-checkpoint']);
  assert.match(d.find((x) => x.code === 'host-backend')!.message, /backend "webgpu" is not available .*available: wasm, cpu/);
  const withCkpt = await diagnose(text, probe({ backends: () => ['webgpu'], checkpointExists: (p) => p === 'ckpt/best' }));
  assert.deepEqual(withCkpt, []);
  assert.deepEqual(await diagnose('{"algorithm": "mkto", "backend": "auto", "data": {"dataset": "gsm8k"}}', probe()), []);
});

test('diagnostics: broken JSON, empty file and a non-object never throw', async () => {
  const broken = await diagnose('{"algorithm": "mdpo",, }', probe());
  assert.ok(broken.length >= 1 && broken.every((x) => x.code === 'json'));
  assert.match((await diagnose('', probe()))[0]!.message, /empty file|JSON/);
  assert.match((await diagnose('[1, 2]', probe()))[0]!.message, /a run config is a JSON object/);
  const failing = probe({ datasets: () => { throw new Error('probe down'); } });
  await assert.rejects(diagnose('{"data": {"dataset": "gsm8k"}}', failing), /probe down/); // the session catches and logs this
});

test('hover: description, default, range and the paper value', () => {
  const text = '{"train": {"beta": 0.2}}';
  const h = hover(text, at(text, 'beta') + 1)!;
  assert.match(h.markdown, /\*\*train\.beta\*\*/);
  assert.match(h.markdown, /KL regularisation/);
  assert.match(h.markdown, /default: `0\.1`/);
  assert.match(h.markdown, /paper: 0\.1 \(η\)/);
  const v = hover(text, at(text, '0.2'))!;
  assert.equal(text.slice(v.range.start, v.range.end), '0.2');
  assert.match(hover('{"bogus": 1}', 3)!.markdown, /not a run-config field/);
  assert.equal(hover('{}', 1), null);
  assert.equal(fieldInfo(['limits', 'maxTurns'])!.paper, '6');
  assert.equal(fieldInfo(['nope']), undefined);
});

test('completion: missing keys of the object, enum values, host datasets marked', () => {
  const text = '{"train": {"beta": 0.1, "" }}';
  const keys = complete(text, at(text, '""') + 1).map((c) => c.label);
  assert.ok(keys.includes('lr') && keys.includes('reference'));
  assert.ok(!keys.includes('beta'), 'present keys are not offered again');
  const root = complete('{ }', 2);
  const algo = root.find((c) => c.label === 'algorithm')!;
  assert.equal(algo.insertText, '"algorithm": ${1:"mdpo"}');
  assert.equal(algo.snippet, true);
  assert.equal(root.find((c) => c.label === 'model')!.insertText, '"model": {$1}');
  const vals = complete('{"algorithm": "" }', at('{"algorithm": "" }', '""') + 1);
  assert.deepEqual(vals.map((c) => c.label), ['"mdpo"', '"mkto"', '"raft"', '"dpo_unmasked"']);
  assert.deepEqual(vals[0]!.replace, { start: 14, end: 16 });
  const ds = complete('{"data": {"dataset": "" }}', 22, ['synthetic']);
  assert.equal(ds.find((c) => c.label === '"gsm8k"')!.detail, 'not on the daemon host');
  assert.equal(ds.find((c) => c.label === '"synthetic"')!.detail, 'default');
  const init = complete('{"model": {"init": }}', 19).map((c) => c.label);
  assert.deepEqual(init, ['null'], 'default null and nullable give one null');
  assert.deepEqual(complete('{"sft": {"enabled": }}', 20).map((c) => c.label), ['true', 'false']);
  assert.equal(editDistance('lrr', 'lr'), 1);
});

/** A client connection wired to a language-server session through the notification transport. */
function pair() {
  const toClient = new NotificationReader();
  const sent: unknown[] = [];
  const session = createSession({ notify: (method, params) => { assert.equal(method, 'lsp/message'); sent.push(params); toClient.push(params); } }, probe());
  const client = createMessageConnection(toClient, new NotificationWriter({ notify: (_m, params) => session.reader.push(params) }));
  client.listen();
  return { client, session, sent };
}

test('a full LSP session over lsp/message notifications: diagnostics, hover, code lens, exit does not kill the process', async () => {
  const { client, session } = pair();
  const diags = new Promise<{ uri: string; diagnostics: Array<{ message: string; range: { start: { line: number } } }> }>((resolve) => client.onNotification('textDocument/publishDiagnostics', resolve));
  const init = await client.sendRequest('initialize', { processId: 999_999_999, rootUri: null, capabilities: {} }) as { capabilities: Record<string, unknown> };
  assert.equal(init.capabilities.hoverProvider, true);
  await client.sendNotification('initialized', {});
  await client.sendNotification('textDocument/didOpen', { textDocument: { uri: 'file:///w/a.mathagent.json', languageId: 'mathagent-config', version: 1, text: DOC } });
  const d = await diags;
  assert.equal(d.uri, 'file:///w/a.mathagent.json');
  assert.ok(d.diagnostics.some((x) => /train\.beta/.test(x.message) && x.range.start.line === 2));
  const h = await client.sendRequest('textDocument/hover', { textDocument: { uri: 'file:///w/a.mathagent.json' }, position: { line: 1, character: 5 } }) as { contents: { value: string } };
  assert.match(h.contents.value, /\*\*algorithm\*\*/);
  const lens = await client.sendRequest('textDocument/codeLens', { textDocument: { uri: 'file:///w/a.mathagent.json' } }) as Array<{ command: { command: string; arguments: unknown[] } }>;
  assert.equal(lens[0]!.command.command, 'mathagent.startRunFromFile');
  assert.deepEqual(lens[0]!.command.arguments, ['file:///w/a.mathagent.json']);
  await client.sendRequest('shutdown');
  await client.sendNotification('exit');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(process.exitCode ?? 0, 0, 'exit ends the session, not the daemon');
  client.dispose();
  session.reader.close();
});

test('register: one session per client, garbage payloads reported not thrown, sessions end on close', () => {
  const handlers: Array<(c: { id: number; notify(m: string, p: unknown): void }, p: unknown) => void> = [];
  const closers: Array<(c: unknown) => void> = [];
  const server = {
    onNotification: (_m: string, h: (c: never, p: unknown) => void) => { handlers.push(h as never); return () => { handlers.length = 0; }; },
    onClientClose: (fn: (c: never) => void) => { closers.push(fn as never); return () => { closers.length = 0; }; },
  };
  const out: unknown[] = [];
  const client = { id: 1, remoteAddress: '', close() {}, notify: (_m: string, p: unknown) => out.push(p) };
  const off = register(server as never, probe());
  assert.equal(handlers.length, 1);
  handlers[0]!(client, 'not a message');
  handlers[0]!(client, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: null, rootUri: null, capabilities: {} } });
  closers[0]!(client);
  off();
  assert.equal(handlers.length, 0);
  assert.equal(closers.length, 0);
});
