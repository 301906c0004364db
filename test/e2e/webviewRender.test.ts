/**
 * The panels' webview bundle in Chromium with hand-made messages (no VS Code): the pair panel highlights the
 * first diverging turn in both columns, compare rows answer clicks, the trajectory panel steps with keys, shows
 * the action mask and per-turn implicit rewards, grows live, and survives hostile messages; metrics charts draw.
 * Same prerequisites as the VS Code e2e (Debian chromium); MATHAGENT_SKIP_E2E=1 skips it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type Page } from 'playwright-core';
import type { Turn } from '@mathagent/shared';
import type { TrajectoryView } from '../../extension/src/webviewProtocol';
import { ROOT, setup } from './harness';

const SKIP = process.env.MATHAGENT_SKIP_E2E === '1';
const ARTIFACTS = join(ROOT, 'test-artifacts', 'webview');

const turn = (index: number, text: string, code: string | null, output: string | null, error = false): Turn => ({
  index, action: { text, tokenIds: [10 + index, 20 + index], logprobs: [-0.5, -1.25] }, finishReason: 'stop',
  toolCall: code === null ? null : { lang: 'mathjs', code },
  observation: output === null ? null : { output, text: `<|output|>${output}<|/output|>`, tokenIds: [90 + index], error, durationMs: 3 },
});

function view(id: string, turns: Turn[], extra: Partial<TrajectoryView> = {}): TrajectoryView {
  const promptTokenIds = [1, 2, 3];
  const tokenIds = [...promptTokenIds];
  const actionMask: (0 | 1)[] = [0, 0, 0];
  for (const t of turns) { for (const x of t.action.tokenIds) { tokenIds.push(x); actionMask.push(1); } for (const x of t.observation?.tokenIds ?? []) { tokenIds.push(x); actionMask.push(0); } }
  return {
    id, runId: 'r1', iteration: 1, promptId: 'synthetic/eval/L1/p7', sampleIndex: 0, split: 'train', policy: 'iter0', question: 'What is 6*7?',
    reference: '42', template: 'mathagent', promptText: '<|user|>What is 6*7?<|end|>', promptTokenIds, turns, extractedAnswer: '42', reward: 1, outcome: 'correct',
    truncation: null, tokenIds, actionMask, tokenTexts: tokenIds.map((x) => `t${x}`), turnRewards: turns.map((_, i) => (i === 0 ? 0.12 : -0.05)), retokenized: false,
    annotation: null, live: false, ...extra,
  };
}

async function open(page: Page, kind: string, js: string, css: string): Promise<void> {
  await page.setContent(`<!DOCTYPE html><html><head><style>${css}
    body { --vscode-foreground:#222; --vscode-editor-background:#fff; --vscode-panel-border:#ccc; --vscode-focusBorder:#0066cc;
      --vscode-editorWarning-foreground:#b58900; --vscode-testing-iconPassed:#2e7d32; --vscode-testing-iconFailed:#c62828;
      --vscode-diffEditor-insertedTextBackground:#d4f7d4; --vscode-textCodeBlock-background:#f3f3f3; --vscode-descriptionForeground:#666;
      --vscode-charts-blue:#1565c0; --vscode-charts-red:#c62828; font-family: sans-serif; }</style></head>
    <body data-panel="${kind}"><div id="app"></div>
    <script>
      // tsx keeps function names with a __name helper that functions passed to page.evaluate carry along.
      window.__name = (f) => f;
      window.sent = [];
      window.acquireVsCodeApi = () => ({ postMessage: (m) => window.sent.push(m), getState: () => window.saved, setState: (s) => { window.saved = s; } });
    </script></body></html>`);
  await page.addScriptTag({ content: js });
}

const post = (page: Page, msg: unknown) => page.evaluate((m) => window.postMessage(m, '*'), msg);
const sent = (page: Page) => page.evaluate(() => (window as unknown as { sent: Array<{ type: string }> }).sent);

test('webview panels render and behave (fixtures in Chromium)', { skip: SKIP ? 'MATHAGENT_SKIP_E2E=1' : false, timeout: 10 * 60_000 }, async () => {
  const prereqs = setup();
  const bundle = await build({ entryPoints: [join(ROOT, 'extension/webview/main.ts')], bundle: true, platform: 'browser', format: 'iife', target: 'es2022', write: false });
  const js = bundle.outputFiles[0]!.text;
  const css = readFileSync(join(ROOT, 'extension/media/panel.css'), 'utf8');
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: prereqs.chromium, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));

    // ---- pair: the first diverging turn (index 1) is highlighted in both columns
    await open(page, 'pair', js, css);
    assert.deepEqual(errors, []);
    assert.deepEqual(await sent(page), [{ type: 'ready' }]);
    const same = turn(0, 'Multiply.', '6*7', '42');
    await post(page, { type: 'pair', title: 'p7 · iteration 1', chosen: view('c', [same, turn(1, 'So \\boxed{42}.', null, null)]),
      rejected: view('r', [same, turn(1, 'Check: ```mathjs\n6*8\n```', '6*8', 'Error: bad', true)], { outcome: 'wrong', reward: 0 }), divergeTurn: 1, position: { index: 1, total: 3 } });
    await page.locator('[data-testid="divergence"]').waitFor();
    assert.equal(await page.locator('[data-testid="divergence"]').innerText(), 'first divergence at turn 2');
    for (const side of ['Chosen', 'Rejected']) {
      assert.deepEqual(await page.locator(`.col[data-side="${side}"] .turn.diverge`).evaluateAll((els) => els.map((e) => e.getAttribute('data-turn'))), ['1'], side);
    }
    assert.equal(await page.locator('.col[data-side="Rejected"] pre.output.err').count(), 1, 'the tool error is marked');
    assert.equal(await page.locator('#prev-pair').isDisabled(), true);
    await page.keyboard.press('j');
    assert.deepEqual((await sent(page)).at(-1), { type: 'stepPair', delta: 1 });
    await page.screenshot({ path: join(ARTIFACTS, 'pair.png'), fullPage: true });

    // ---- compare: rows ask for their prompt; the detail shows both sides
    await open(page, 'compare', js, css);
    const hdr = (id: string, outcome: string) => ({ id, runId: 'r1', iteration: 1, promptId: id, sampleIndex: 0, split: 'eval', question: `Q ${id}`, outcome, reward: outcome === 'correct' ? 1 : 0, extractedAnswer: null, turns: 1, annotation: null });
    const strip = (r: { promptId: string; a: string; b: string }) => ({ promptId: r.promptId, question: `Q ${r.promptId}`, a: hdr(`a-${r.promptId}`, r.a), b: hdr(`b-${r.promptId}`, r.b) });
    const row = (promptId: string, a: string, b: string) => ({ promptId, a, b });
    await post(page, { type: 'compare', a: { runId: 'r1', iteration: 1, label: 'smoke · it 1' }, b: { runId: 'r1', iteration: 2, label: 'smoke · it 2' },
      fixed: [strip(row('p1', 'wrong', 'correct')), strip(row('p2', 'no_answer', 'correct'))], broken: [strip(row('p3', 'correct', 'wrong'))], sameCorrect: 4, sameWrong: 9 });
    await page.locator('#fixed .row').first().waitFor();
    assert.equal(await page.locator('#fixed .row').count(), 2);
    assert.equal(await page.locator('#broken .row').count(), 1);
    await page.locator('#broken .row').click();
    assert.deepEqual((await sent(page)).at(-1), { type: 'selectCompare', promptId: 'p3' });
    await post(page, { type: 'compareDetail', promptId: 'p3', a: view('a-p3', [same]), b: view('b-p3', [turn(0, 'Guess.', null, null)], { outcome: 'wrong', reward: 0 }), divergeTurn: 0 });
    await page.locator('.cols .col').nth(1).waitFor();
    assert.equal(await page.locator('#broken .row.selected').count(), 1);
    assert.equal(await page.locator('.cols .turn.diverge').count(), 2);
    await page.screenshot({ path: join(ARTIFACTS, 'compare.png'), fullPage: true });

    // ---- trajectory: keys, token view, implicit rewards, live growth, hostile messages
    await open(page, 'trajectory', js, css);
    const t = view('t1', [turn(0, 'Use the tool.\n```mathjs\n6*7\n```', '6*7', '42'), turn(1, 'Oops ```mathjs\n6/0\n```', '6/0', 'Error: division by zero', true), turn(2, '\\boxed{42}', null, null)]);
    await post(page, { type: 'trajectory', view: t, position: { index: 2, total: 5 }, turn: 0 });
    await page.locator('#turn-indicator').waitFor();
    assert.equal(await page.locator('#turn-indicator').innerText(), 'Turn 1 / 3');
    assert.match(await page.locator('.turn[data-turn="0"] .reward').innerText(), /\+0\.120/);
    assert.equal(await page.locator('.turn[data-turn="0"] .reasoning').innerText(), 'Use the tool.', 'the code block is shown apart, highlighted');
    assert.equal(await page.locator('.turn[data-turn="0"] pre.code .tok-num').allInnerTexts().then((x) => x.join(',')), '6,7');
    await page.keyboard.press('n');
    await page.keyboard.press('n');
    await page.keyboard.press('n'); // past the end: stays on the last turn
    assert.equal(await page.locator('#turn-indicator').innerText(), 'Turn 3 / 3');
    assert.deepEqual((await sent(page)).filter((m) => m.type === 'turnChanged'), [{ type: 'turnChanged', trajectoryId: 't1', turn: 1 }, { type: 'turnChanged', trajectoryId: 't1', turn: 2 }]);
    await page.keyboard.press('p');
    assert.equal(await page.locator('.turn.focused').getAttribute('data-turn'), '1');
    await page.keyboard.press('t');
    const acts = await page.locator('[data-testid="token-view"] .tokens .t.act').count();
    assert.equal(acts, t.actionMask.filter((m) => m === 1).length, 'exactly the action tokens are marked as counted');
    assert.match(await page.locator('[data-testid="token-view"]').innerText(), /11 tokens, 6 counted by the loss \(54\.5%\)/);
    await page.screenshot({ path: join(ARTIFACTS, 'trajectory-tokens.png'), fullPage: true });
    await page.keyboard.press('t');
    await page.keyboard.press('r');
    assert.match(await page.locator('[data-testid="raw-view"]').innerText(), /<\|output\|>Error: division by zero<\|\/output\|>/);
    await page.keyboard.press('r');
    await page.keyboard.press('j');
    await page.keyboard.press('a');
    const tail = (await sent(page)).slice(-2);
    assert.deepEqual(tail, [{ type: 'stepTrajectory', delta: 1 }, { type: 'annotate', trajectoryId: 't1', turn: 1 }]);
    const saved = await page.evaluate(() => (window as unknown as { saved: unknown }).saved);
    assert.deepEqual(saved, { panel: 'trajectory', trajectoryId: 't1', turn: 1, raw: false, tokens: false });
    // live growth of a trajectory being sampled
    await post(page, { type: 'trajectory', view: view('live', [turn(0, 'Start.', null, null)], { live: true, outcome: null, reward: null, tokenIds: [], actionMask: [], tokenTexts: null }), position: null, turn: 0 });
    await post(page, { type: 'liveTurn', trajectoryId: 'live', turn: turn(1, 'More.', '1+1', '2') });
    await page.locator('.turn[data-turn="1"]').waitFor();
    assert.equal(await page.locator('#turn-indicator').innerText(), 'Turn 2 / 2', 'follows the growth');
    await post(page, { type: 'liveTurn', trajectoryId: 'other', turn: turn(2, 'x', null, null) });
    // hostile messages: dropped with a log message back to the host, the panel keeps working
    const before = (await sent(page)).length;
    await post(page, { type: 'trajectory', view: { id: '<img src=x onerror=alert(1)>' } });
    await post(page, '<script>alert(1)</script>');
    await post(page, { type: 'error', message: '<b>not bold</b>' });
    await page.locator('.error-box').waitFor();
    assert.equal(await page.locator('.error-box').innerText(), '<b>not bold</b>', 'text, never HTML');
    assert.equal(await page.locator('.error-box b').count(), 0);
    const logs = (await sent(page)).slice(before).filter((m) => m.type === 'log');
    assert.equal(logs.length, 2);
    assert.equal(await page.locator('#turn-indicator').innerText(), 'Turn 2 / 2');

    // ---- metrics: one chart per family, live points appended
    await open(page, 'metrics', js, css);
    const pts = (name: string, vals: number[], iteration = 1) => vals.map((value, step) => ({ runId: 'r1', iteration, step, name, value }));
    await post(page, { type: 'metrics', runId: 'r1', title: 'Metrics · smoke', replace: true, points: [...pts('loss', [0.69, 0.6, 0.5]), ...pts('rewards/margins', [0, 0.1, 0.3]), ...pts('logps/chosen', [-40, -38, -35]), ...pts('logps/rejected', [-41, -43, -46]), { runId: 'r1', iteration: 0, step: 0, name: 'eval/pass1', value: 0.2 }, { runId: 'r1', iteration: 1, step: 0, name: 'eval/pass1', value: 0.35 }] });
    await page.locator('.chart').first().waitFor();
    assert.deepEqual(await page.locator('.chart').evaluateAll((els) => els.map((e) => e.getAttribute('data-chart'))), ['loss', 'rewards/chosen', 'logps/chosen', 'eval/pass1']); // a chart is named after its family's first metric
    assert.match(await page.locator('.chart[data-chart="eval/pass1"] .key').innerText(), /eval\/pass1 = 35\.0%/);
    await post(page, { type: 'metrics', runId: 'r1', title: 'Metrics · smoke', replace: false, points: pts('loss', [0.45], 2) });
    await page.locator('.chart[data-chart="loss"] .key', { hasText: 'loss = 0.45' }).waitFor();
    assert.equal(await page.locator('.chart[data-chart="loss"] .boundary').count(), 1, 'a line where iteration 2 starts');
    assert.match(await page.locator('.metrics > p.muted').innerText(), /^15 points$/);
    await page.screenshot({ path: join(ARTIFACTS, 'metrics.png'), fullPage: true });

    // ---- metrics: held-out pass@1 by subject and level, one column per evaluated iteration
    assert.equal(await page.locator('.breakdown').count(), 0, 'no table before any evaluation has a breakdown');
    const brow = (key: string, n: number, correct: number) => ({ key, n, correct, pass1: correct / n });
    const ev = (iteration: number, breakdown: unknown) => ({ iteration, pass1: 0.3, ci95: [0.1, 0.5], passK: null, k: 1, n: 10, meanTurns: 2, toolErrorRate: 0, breakdown });
    await post(page, { type: 'evals', runId: 'r1', evals: [
      ev(1, { subject: [brow('Algebra', 6, 3), brow('Geometry', 4, 1)], level: [brow('2', 7, 3), brow('10', 3, 1)] }),
      ev(0, { subject: [brow('Algebra', 6, 1), brow('Geometry', 4, 0)], level: [brow('2', 7, 1), brow('10', 3, 0)] }),
      ev(2, null),
    ] });
    await page.locator('.breakdown').waitFor();
    const cells = (field: string) => page.locator(`table[data-breakdown="${field}"] tr`).evaluateAll((trs) => trs.map((tr) => Array.from(tr.children).map((c) => (c as HTMLElement).innerText)));
    assert.deepEqual(await cells('subject'), [['Subject', 'n', 'pass@1 it 0', 'pass@1 it 1'], ['Algebra', '6', '16.7%', '50.0%'], ['Geometry', '4', '0.0%', '25.0%']]);
    assert.deepEqual(await cells('level'), [['Level', 'n', 'pass@1 it 0', 'pass@1 it 1'], ['2', '7', '14.3%', '42.9%'], ['10', '3', '0.0%', '33.3%']]);
    assert.equal(await page.locator('table[data-breakdown="subject"] tr[data-key="Algebra"] td').nth(3).getAttribute('title'), '3 of 6 correct');
    // Another run's evaluations (a stale reply) and a malformed message change nothing.
    const sentBefore = (await sent(page)).length;
    await post(page, { type: 'evals', runId: 'other', evals: [] });
    await post(page, { type: 'evals', runId: 'r1', evals: [ev(0, { subject: [brow('Algebra', -1, 0)], level: [] })] });
    await page.waitForFunction((n) => (window as unknown as { sent: unknown[] }).sent.length > n, sentBefore);
    assert.equal(await page.locator('table[data-breakdown="subject"] tr').count(), 3);
    // One evaluated iteration (an eval run): a single pass@1 column.
    await post(page, { type: 'evals', runId: 'r1', evals: [ev(0, { subject: [brow('Precalculus', 2, 1)], level: [] })] });
    await page.locator('table[data-breakdown="subject"] tr[data-key="Precalculus"]').waitFor();
    assert.deepEqual(await cells('subject'), [['Subject', 'n', 'pass@1'], ['Precalculus', '2', '50.0%']]);
    assert.equal(await page.locator('table[data-breakdown="level"]').count(), 0);
    assert.equal(await page.locator('.chart').count(), 4, 'the charts stay above the table');
    await page.screenshot({ path: join(ARTIFACTS, 'metrics-breakdown.png'), fullPage: true });
    assert.deepEqual(errors, [], 'no uncaught errors in the webview');
  } finally {
    await browser.close();
  }
});
