import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteTokenizer, StreamDecoder } from '../../daemon/src/model/tokenizer';

const SPECIALS = ['<|pad|>', '<|user|>', '<|assistant|>', '<|end|>', '<|output|>', '<|/output|>'];

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer(SPECIALS);

  it('maps bytes to 0..255 and specials to one id each after them', () => {
    assert.equal(tok.vocabSize, 262);
    assert.deepEqual(tok.encode('Ab'), [65, 98]);
    assert.deepEqual(tok.encode('<|user|>x<|end|>'), [257, 120, 259]);
    assert.equal(tok.eosId, 259);
    assert.equal(tok.padId, 256);
    assert.equal(tok.specialId('<|output|>'), 260);
    // 'é' is two UTF-8 bytes, '€' three, an emoji four.
    assert.deepEqual(tok.encode('é€'), [0xc3, 0xa9, 0xe2, 0x82, 0xac]);
    assert.equal(tok.encode('😀').length, 4);
  });

  it('round-trips any UTF-8 text exactly, including specials next to multibyte characters', () => {
    const samples = [
      '',
      'plain ascii 123',
      '<|user|>Was ist 7·8? Ünïcödé ✓ 数学 😀<|end|><|assistant|>```mathjs\n7*8\n```<|output|>\n56\n<|/output|>\n\\boxed{56}<|end|>',
      '<|out', // a prefix of a special is plain text
      '<|output|><|/output|><|output|>',
      '<|<|end|>|>',
      '\u0000\u007f\uffff',
      'a\r\n\tb',
    ];
    for (const s of samples) assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
    assert.deepEqual(tok.encode('<|out'), [...Buffer.from('<|out')]);
  });

  it('prefers the longest special when one is a prefix of another', () => {
    const t = new ByteTokenizer(['<a>', '<a>b']);
    assert.deepEqual(t.encode('<a>b<a>'), [257, 256]);
    assert.equal(t.decode([257, 256]), '<a>b<a>');
  });

  it('without <|end|> or <|pad|> has no eos and pads with 0', () => {
    const t = new ByteTokenizer();
    assert.equal(t.eosId, null);
    assert.equal(t.padId, 0);
    assert.equal(t.vocabSize, 256);
    assert.deepEqual(t.encode('<|end|>'), [...Buffer.from('<|end|>')]);
  });

  it('gives token texts for the token view', () => {
    assert.equal(tok.tokenText(65), 'A');
    assert.equal(tok.tokenText(259), '<|end|>');
    assert.equal(tok.tokenText(0xe2), '<0xE2>');
  });

  it('rejects bad specials and out-of-range ids with clear errors', () => {
    assert.throws(() => new ByteTokenizer(['<a>', '<a>']), /listed twice/);
    assert.throws(() => new ByteTokenizer(['']), /non-empty string/);
    assert.throws(() => tok.decode([262]), /id 262 is outside the vocabulary \[0, 262\)/);
    assert.throws(() => tok.decode([-1]), /outside the vocabulary/);
    assert.throws(() => tok.decode([1.5]), /outside the vocabulary/);
    assert.throws(() => tok.tokenText(999), /outside the vocabulary/);
  });
});

describe('StreamDecoder', () => {
  it('emits a multibyte character only when its last byte arrives', () => {
    const tok = new ByteTokenizer(SPECIALS);
    const d = new StreamDecoder(tok);
    const pieces = [...tok.encode('x€'), 259].map((id) => d.push(id));
    assert.deepEqual(pieces, ['x', '', '', '€', '<|end|>']);
    assert.equal(d.value, 'x€<|end|>');
  });
});
