/**
 * Export round trip: pairs exported in the TRL and OpenRLHF formats and re-imported give the same messages,
 * masks and token ids as the trajectories they came from.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flattenTokens, type Trajectory, type Turn } from '@mathagent/shared';
import { ByteTokenizer } from '../../daemon/src/model/tokenizer';
import { getTemplate } from '../../daemon/src/env/templates';
import { exportPair } from '../../daemon/src/pipeline/exportPairs';
import { exportOpenRLHF, importPairs, writePairFiles } from '../../daemon/src/pipeline/exportFormats';

const tpl = getTemplate('mathagent');
const tok = new ByteTokenizer(tpl.specialTokens);

/** A trajectory with one tool call and a final answer; `actionIds` overrides how the final action was sampled. */
function traj(id: string, answer: string, finalIds?: number[]): Trajectory {
  const question = 'Ann has 3 boxes of 4 pens. How many pens?';
  const promptText = tpl.renderPrompt(question);
  const promptTokenIds = tok.encode(promptText);
  const a1 = tpl.renderToolCall('Multiply.', '3 * 4');
  const obsText = tpl.renderObservation('12', false);
  const a2 = tpl.renderFinal(`So \\boxed{${answer}}.`);
  const turns: Turn[] = [
    { index: 0, action: { text: a1, tokenIds: tok.encode(a1), logprobs: [] }, finishReason: 'stop', toolCall: { lang: 'mathjs', code: '3 * 4' },
      observation: { output: '12', text: obsText, tokenIds: tok.encode(obsText), error: false, durationMs: 1 } },
    { index: 1, action: { text: a2, tokenIds: finalIds ?? tok.encode(a2), logprobs: [] }, finishReason: 'eos', toolCall: null, observation: null },
  ];
  const { tokenIds, actionMask } = flattenTokens(promptTokenIds, turns);
  return {
    id, runId: 'run1', iteration: 2, promptId: 'syn:7', sampleIndex: 0, policy: 'iter1', question, reference: '12', template: 'mathagent',
    promptText, promptTokenIds, turns, extractedAnswer: answer, reward: answer === '12' ? 1 : 0, outcome: answer === '12' ? 'correct' : 'wrong',
    truncation: null, tokenIds, actionMask, retokenized: false, createdAt: '2026-01-01T00:00:00Z',
  };
}

describe('export formats', () => {
  const chosen = traj('c', '12');
  const rejected = traj('r', '7');

  it('OpenRLHF rows: template-rendered prompt, completion text, action spans covering exactly the model\'s text', () => {
    const row = exportOpenRLHF(chosen, rejected);
    assert.equal(row.prompt, '<|user|>Ann has 3 boxes of 4 pens. How many pens?<|end|><|assistant|>');
    const a1 = 'Multiply.\n```mathjs\n3 * 4\n```<|output|>';
    const obs = '\n12\n<|/output|>\n';
    const a2 = 'So \\boxed{12}.<|end|>';
    assert.equal(row.chosen, a1 + obs + a2);
    assert.deepEqual(row.chosen_action_spans, [[0, a1.length], [a1.length + obs.length, a1.length + obs.length + a2.length]]);
    assert.deepEqual(row.chosen_action_spans.map(([s, e]) => row.chosen.slice(s, e)), [a1, a2]);
    assert.equal(row.rejected.endsWith('\\boxed{7}.<|end|>'), true);
    assert.equal(row.chosen_tokens, undefined);
  });

  it('round trip through both formats gives the same messages, masks and token ids (exported ids)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'export-'));
    try {
      const files = writePairFiles(dir, [{ chosen, rejected }]);
      assert.equal(files.count, 1);
      for (const file of [files.trl, files.openrlhf]) {
        const [p] = importPairs(readFileSync(file, 'utf8'));
        assert.ok(p);
        assert.equal(p.format, file.endsWith('trl.jsonl') ? 'trl' : 'openrlhf');
        for (const [side, t] of [[p.chosen, chosen], [p.rejected, rejected]] as const) {
          assert.equal(side.tokenSource, 'exported');
          assert.deepEqual(side.tokenIds, t.tokenIds);
          assert.deepEqual(side.actionMask, t.actionMask);
          assert.equal(side.promptText, t.promptText);
          assert.deepEqual(side.messages.map((m) => [m.role, m.content, m.mask]), [
            ['assistant', t.turns[0]!.action.text, 1], ['user', t.turns[0]!.observation!.text, 0], ['assistant', t.turns[1]!.action.text, 1],
          ]);
        }
        assert.deepEqual([p.promptId, p.runId, p.iteration, p.chosenId, p.rejectedId, p.reference, p.question], ['syn:7', 'run1', 2, 'c', 'r', '12', chosen.question]);
      }
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('without exported ids, re-encodes segment by segment with the tokenizer: same ids and masks for canonical samples', () => {
    for (const row of [exportPair(chosen, rejected), exportOpenRLHF(chosen, rejected)]) {
      const [p] = importPairs(JSON.stringify(row), { tokenizer: tok });
      assert.equal(p!.chosen.tokenSource, 'tokenizer');
      assert.deepEqual(p!.chosen.tokenIds, chosen.tokenIds);
      assert.deepEqual(p!.chosen.actionMask, chosen.actionMask);
      const [bare] = importPairs(JSON.stringify(row));
      assert.equal(bare!.chosen.tokenIds, null, 'no ids and no tokenizer: text only');
    }
  });

  it('exported ids win where re-encoding would drift (a model that spelled <|end|> byte by byte)', () => {
    const a2 = tpl.renderFinal('So \\boxed{12}.');
    const bytes = [...Buffer.from(a2, 'utf8')]; // '<|end|>' as 7 byte ids instead of its special id
    const odd = traj('odd', '12', bytes);
    const exported = importPairs(JSON.stringify(exportPair(odd, rejected, { tokens: true })), { tokenizer: tok })[0]!;
    assert.deepEqual(exported.chosen.tokenIds, odd.tokenIds);
    const reencoded = importPairs(JSON.stringify(exportPair(odd, rejected)), { tokenizer: tok })[0]!;
    assert.notDeepEqual(reencoded.chosen.tokenIds, odd.tokenIds);
    assert.equal(reencoded.chosen.tokenIds!.length, odd.tokenIds.length - 6);
  });

  it('names the line and field of a bad row', () => {
    const good = JSON.stringify(exportOpenRLHF(chosen, rejected));
    assert.throws(() => importPairs(`${good}\n{oops`), /line 2: /);
    assert.throws(() => importPairs(JSON.stringify({ ...JSON.parse(good), chosen: 5 })), /line 1: "chosen" must be a message list \(TRL\) or a string \(OpenRLHF\)/);
    assert.throws(() => importPairs(JSON.stringify({ ...JSON.parse(good), chosen_action_spans: [[5, 2]] })), /chosen_action_spans: span \[5,2\] is not an increasing range/);
    assert.throws(() => importPairs(JSON.stringify({ ...exportPair(chosen, rejected), rejected: [{ role: 'system', content: 'x', mask: 0 }] })), /rejected\[0\] must be/);
    assert.throws(() => importPairs(JSON.stringify({ ...exportPair(chosen, rejected, { tokens: true }), chosen_tokens: { ids: [1, 2], action_mask: [1] } })), /chosen_tokens must hold/);
    assert.deepEqual(importPairs('\n\n'), []);
  });
});
