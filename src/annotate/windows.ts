/**
 * `--chunking chunks`: long documents become overlapping windows over their token ids instead of being
 * truncated. Each window holds at most maxLength tokens: the body (ids without the special tokens) is cut
 * into pieces of B = maxLength - specials tokens with stride ceil(B / 2), and every piece is re-wrapped in the
 * same leading/trailing special tokens ([CLS] .. [SEP], <s> .. </s>). A document that fits is one window
 * equal to its ordinary encoding, so short texts score exactly as with --chunking truncate.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Tokenizer as HfTokenizer } from 'tokenizers';
import type { Encoded } from '../tokenize/tokenizer.js';
import { UsageError } from '../util/errors.js';

const require = createRequire(import.meta.url);

export interface Windowed {
  /** All windows of all documents, document by document. */
  windows: Encoded[];
  /** Windows per document (>= 1). */
  counts: Int32Array;
  /** Documents that needed more than one window. */
  longDocs: number;
  /** Real tokens of the documents (special tokens once per document). */
  tokens: number;
}

export class WindowTokenizer {
  private constructor(
    private readonly tok: HfTokenizer,
    readonly maxLength: number,
    private readonly prefix: number,
    private readonly suffix: number,
  ) {}

  static load(modelDir: string, maxLength: number): WindowTokenizer {
    const file = join(modelDir, 'tokenizer.json');
    if (!existsSync(file)) throw new UsageError(`No tokenizer found: ${file} does not exist`);
    const { Tokenizer } = require('tokenizers') as typeof import('tokenizers');
    const tok = Tokenizer.fromFile(file);
    tok.disablePadding();
    tok.disableTruncation();
    return new WindowTokenizer(tok, maxLength, 0, 0);
  }

  /** Leading/trailing special-token counts, read from how the post-processor wraps a plain word. */
  async init(): Promise<WindowTokenizer> {
    const mask = (await this.tok.encode('a')).getSpecialTokensMask();
    let p = 0;
    while (p < mask.length && mask[p] === 1) p++;
    let s = 0;
    while (s < mask.length - p && mask[mask.length - 1 - s] === 1) s++;
    if (this.maxLength - p - s < 2) throw new UsageError(`--max-length ${this.maxLength} leaves no room for text between ${p + s} special tokens`);
    return new WindowTokenizer(this.tok, this.maxLength, p, s);
  }

  async encode(texts: readonly string[]): Promise<Windowed> {
    const encs = texts.length ? await this.tok.encodeBatch([...texts] as never) : [];
    const windows: Encoded[] = [];
    const counts = new Int32Array(texts.length);
    let longDocs = 0;
    let tokens = 0;
    const body = this.maxLength - this.prefix - this.suffix;
    const stride = Math.ceil(body / 2);
    encs.forEach((e, d) => {
      const ids = e.getIds();
      const types = e.getTypeIds();
      tokens += ids.length;
      if (ids.length <= this.maxLength) {
        windows.push({ ids: Int32Array.from(ids), typeIds: Int32Array.from(types), droppedTokens: 0 });
        counts[d] = 1;
        return;
      }
      longDocs++;
      const head = ids.slice(0, this.prefix);
      const tail = ids.slice(ids.length - this.suffix);
      const inner = ids.slice(this.prefix, ids.length - this.suffix);
      const headT = types.slice(0, this.prefix);
      const tailT = types.slice(types.length - this.suffix);
      const innerT = types.slice(this.prefix, types.length - this.suffix);
      let k = 0;
      for (let start = 0; ; start += stride) {
        const end = Math.min(start + body, inner.length);
        windows.push({
          ids: Int32Array.from([...head, ...inner.slice(start, end), ...tail]),
          typeIds: Int32Array.from([...headT, ...innerT.slice(start, end), ...tailT]),
          droppedTokens: 0,
        });
        k++;
        if (end === inner.length) break;
      }
      counts[d] = k;
    });
    return { windows, counts, longDocs, tokens };
  }
}
