import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateDemos } from '../../daemon/src/data/synthetic';
import { renderDemo } from '../../daemon/src/env/demos';
import { SandboxPool } from '../../daemon/src/env/sandbox';
import { getTemplate } from '../../daemon/src/env/templates';
import type { Tokenizer } from '../../daemon/src/env/policy';

// The real tool: demonstrations must show exactly what the sandbox prints, as plain digits.
const pool = new SandboxPool({ workers: 1 });
after(() => pool.close());

const chars: Tokenizer = {
  name: 'chars', vocabSize: 0x110000, eosId: null,
  encode: (t) => Array.from(t, (c) => c.codePointAt(0)!),
  decode: (ids) => String.fromCodePoint(...ids),
  tokenText: (id) => String.fromCodePoint(id),
};

test('demos rendered through the real sandbox: plain-digit outputs, the final box equals the last output', async () => {
  const template = getTemplate('mathagent');
  for (const level of [1, 2, 3] as const) {
    const demos = generateDemos({ seed: 9, count: 24, flawedShare: 0.5, level });
    for (const d of demos) {
      const session = pool.session();
      try {
        const r = await renderDemo(d, template, chars, session);
        const calls = d.steps.filter((s) => s.code !== null).length;
        assert.equal(r.outputs.length, calls);
        for (const o of r.outputs) assert.match(o, /^-?\d+$/, `${d.problem.id}: tool printed ${o}`);
        const boxed = /\\boxed\{(-?\d+)\}<\|end\|>$/.exec(r.text);
        assert.ok(boxed, r.text);
        assert.equal(boxed[1], r.outputs.at(-1));
        assert.equal(boxed[1] === d.problem.answer, !d.flawed, `${d.problem.id} flawed=${d.flawed}`);
      } finally {
        session.dispose();
      }
    }
  }
});
