import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TextTokenizer, padEncoded } from '../src/tokenize/tokenizer.js';
import { sharedPath } from './helpers/shared.js';

/** Token -> id from vocab.txt (line number), an independent reference for whole-word tokens. */
function vocab(dir: string): Map<string, number> {
  const lines = readFileSync(sharedPath('models', 'tokenizer-only', dir, 'vocab.txt'), 'utf8').split('\n');
  return new Map(lines.map((t, i) => [t, i]));
}

describe('TextTokenizer with real tokenizers', () => {
  const minilmDir = sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2');
  const klueDir = sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer');

  it('English WordPiece: specials, lower-casing, no baked-in fixed padding', async () => {
    const v = vocab('all-minilm-l6-v2');
    const tok = TextTokenizer.load(minilmDir, { maxLength: 512 });
    const [e] = await tok.encode(['Hello World']);
    // tokenizer.json pads to a fixed 128; ours must not.
    expect(Array.from(e.ids)).toEqual([v.get('[CLS]'), v.get('hello'), v.get('world'), v.get('[SEP]')]);
    expect(Array.from(e.typeIds)).toEqual([0, 0, 0, 0]);
    expect(e.droppedTokens).toBe(0);
    expect(tok.padId).toBe(v.get('[PAD]'));
  });

  it('sentence pairs get token type 1 on the second segment', async () => {
    const v = vocab('all-minilm-l6-v2');
    const tok = TextTokenizer.load(minilmDir, { maxLength: 512 });
    const [e] = await tok.encode(['the cat'], ['a dog']);
    expect(Array.from(e.ids)).toEqual(
      ['[CLS]', 'the', 'cat', '[SEP]', 'a', 'dog', '[SEP]'].map((t) => v.get(t)),
    );
    expect(Array.from(e.typeIds)).toEqual([0, 0, 0, 0, 1, 1, 1]);
  });

  it('Korean klue tokenizer: [CLS]=0 ... [SEP]=2 and wordpieces from vocab.txt', async () => {
    const v = vocab('klue-roberta-tokenizer');
    const tok = TextTokenizer.load(klueDir, { maxLength: 512 });
    const [e] = await tok.encode(['안녕하세요 반갑습니다.']);
    expect(Array.from(e.ids)).toEqual(
      ['[CLS]', '안녕', '##하', '##세요', '반갑', '##습', '##니다', '.', '[SEP]'].map((t) => v.get(t)),
    );
    expect(e.ids[0]).toBe(0);
    expect(e.ids[e.ids.length - 1]).toBe(2);
    expect(tok.padId).toBe(1);
  });

  it('truncates to maxLength, keeps the closing special token, and counts dropped tokens', async () => {
    const tok = TextTokenizer.load(minilmDir, { maxLength: 8 });
    const long = 'one two three four five six seven eight nine ten eleven twelve';
    const [full] = await TextTokenizer.load(minilmDir, { maxLength: 512 }).encode([long]);
    const [cut, short] = await tok.encode([long, 'short text']);
    expect(full.ids.length).toBe(14);
    expect(cut.ids.length).toBe(8);
    expect(Array.from(cut.ids.slice(0, 7))).toEqual(Array.from(full.ids.slice(0, 7)));
    expect(cut.ids[7]).toBe(full.ids[full.ids.length - 1]); // [SEP]
    expect(cut.droppedTokens).toBe(6);
    expect(short.droppedTokens).toBe(0);
  });

  it('pads dynamically to the longest row with the pad id, mask 0 and type 0', () => {
    const rows = [
      { ids: Int32Array.from([5, 6, 7]), typeIds: Int32Array.from([0, 0, 1]), droppedTokens: 0 },
      { ids: Int32Array.from([5]), typeIds: Int32Array.from([0]), droppedTokens: 0 },
    ];
    const b = padEncoded(rows, 1);
    expect(b.seqLen).toBe(3);
    expect(Array.from(b.inputIds)).toEqual([5, 6, 7, 5, 1, 1]);
    expect(Array.from(b.attentionMask)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(Array.from(b.tokenTypeIds)).toEqual([0, 0, 1, 0, 0, 0]);
    expect(Array.from(b.lengths)).toEqual([3, 1]);
  });

  it('a missing tokenizer.json is a clear error', () => {
    expect(() => TextTokenizer.load('/nonexistent-dir', { maxLength: 16 })).toThrow(/tokenizer\.json/);
  });
});
