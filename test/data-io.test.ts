import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import fc from 'fast-check';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecord } from '../src/data/csv.js';
import { openTable, openTableWriter, type ColumnType, type ReadBatch, type RecordBatchLike, type WriteColumn } from '../src/data/table.js';
import { sharedPath } from './helpers/shared.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'edu-train-data-io-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
const tmp = (name: string) => join(dir, name);
/** Open and read everything: errors may surface at open (header, JSONL type inference) or while reading. */
const readFile = async (path: string, opts = {}) => (await openTable(path, opts)).readAll();

const SCHEMA: WriteColumn[] = [
  { name: 'text', type: 'string' },
  { name: 'i32', type: 'int32' },
  { name: 'i64', type: 'int64' },
  { name: 'f32', type: 'float32' },
  { name: 'f64', type: 'float64' },
  { name: 'flag', type: 'bool' },
  { name: 'embedding', type: 'list<float32>' },
  { name: 'probs', type: 'list<float64>' },
];
/** How text formats are told the types back (CSV has none; JSONL infers, but explicit is exact). */
const TEXT_TYPES: Record<string, ColumnType> = {
  i32: 'int',
  i64: 'int',
  f32: 'float',
  f64: 'float',
  flag: 'bool',
  embedding: 'list<float>',
  probs: 'list<double>',
};

const STRINGS = [
  '안녕하세요, "세계"!',
  '',
  null,
  '日本語のテキスト😀👩‍👩‍👧',
  'multi\nline\r\nwith\ttab',
  '"starts with a quote',
  'comma, and ""double"" quotes',
  ' padded ',
  '\uFEFFbom-like',
  'null',
];

function sampleBatch(): RecordBatchLike {
  const n = STRINGS.length;
  const emb = (i: number) => {
    const v = new Float32Array(8);
    for (let k = 0; k < 8; k++) v[k] = Math.fround(Math.sin(i * 8 + k) * 10 ** (k - 4));
    if (i === 1) v[0] = 3.4028234663852886e38;
    if (i === 2) v[1] = 1.401298464324817e-45; // smallest subnormal float32
    return v;
  };
  return {
    numRows: n,
    columns: {
      text: STRINGS,
      i32: Array.from({ length: n }, (_, i) => (i === 2 ? null : i === 3 ? -2147483648 : i * 1000 - 7)),
      i64: Array.from({ length: n }, (_, i) => (i === 4 ? null : i === 5 ? 9007199254740991 : i === 6 ? -(2n ** 50n) : i)),
      f32: Array.from({ length: n }, (_, i) => (i === 7 ? null : Math.fround(i / 3))),
      f64: Array.from({ length: n }, (_, i) => (i === 8 ? null : i === 9 ? 1e300 : Math.PI * i)),
      flag: Array.from({ length: n }, (_, i) => (i === 1 ? null : i % 2 === 0)),
      embedding: Array.from({ length: n }, (_, i) => (i === 3 ? null : i === 4 ? new Float32Array(0) : emb(i))),
      probs: Array.from({ length: n }, (_, i) => (i === 5 ? null : i === 6 ? [0.25, 0.75] : new Float64Array([0.1, 0.2, 0.7]))),
    },
  };
}

/** What a reader should return for sampleBatch(). */
function expected(b: RecordBatchLike): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const c of SCHEMA) {
    out[c.name] = Array.from(b.columns[c.name], (v) => {
      if (v === null || v === undefined) return null;
      if (typeof v === 'bigint') return Number(v);
      if (c.type === 'list<float32>') return Float32Array.from(v as ArrayLike<number>);
      if (c.type === 'list<float64>') return Float64Array.from(v as ArrayLike<number>);
      return v;
    });
  }
  return out;
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

async function writeTable(path: string, schema: WriteColumn[], batches: RecordBatchLike[], options = {}) {
  const w = await openTableWriter(path, schema, options);
  for (const b of batches) await w.write(b);
  await w.close();
}

const FORMATS = ['parquet', 'arrow', 'arrows', 'feather', 'jsonl', 'ndjson', 'csv', 'tsv'] as const;

describe('round trip of every column type', () => {
  for (const ext of FORMATS) {
    it(`.${ext}`, async () => {
      const p = tmp(`rt.${ext}`);
      const b = sampleBatch();
      await writeTable(p, SCHEMA, [b, b]);
      const text = ['jsonl', 'ndjson', 'csv', 'tsv'].includes(ext);
      const r = await openTable(p, text ? { types: TEXT_TYPES } : {});
      expect(r.schema).toEqual([
        { name: 'text', type: 'string' },
        { name: 'i32', type: 'int' },
        { name: 'i64', type: 'int' },
        { name: 'f32', type: 'float' },
        { name: 'f64', type: 'float' },
        { name: 'flag', type: 'bool' },
        { name: 'embedding', type: 'list<float>' },
        { name: 'probs', type: 'list<double>' },
      ]);
      const all = await r.readAll();
      await r.close();
      expect(all.numRows).toBe(2 * b.numRows);
      const exp = expected(b);
      for (const c of SCHEMA) {
        expect(all.columns[c.name], c.name).toEqual([...exp[c.name], ...exp[c.name]]);
      }
      // list<float32> is bit-exact, including the extremes.
      for (let i = 0; i < b.numRows; i++) {
        const want = exp.embedding[i] as Float32Array | null;
        const got = all.columns.embedding[i] as Float32Array | null;
        if (want === null) expect(got).toBeNull();
        else {
          expect(got).toBeInstanceOf(Float32Array);
          expect(bits(got!)).toEqual(bits(want));
        }
      }
      expect(r.stats.rowsRead).toBe(2 * b.numRows);
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  }

  it('JSONL infers the same types without being told', async () => {
    const p = tmp('infer.jsonl');
    await writeTable(p, SCHEMA, [sampleBatch()]);
    const r = await openTable(p);
    expect(r.schema.map((c) => c.type)).toEqual(['string', 'int', 'int', 'float', 'float', 'bool', 'list<float>', 'list<float>']);
  });

  it('CSV without types gives strings, with unquoted empty = null and "" = empty string', async () => {
    const p = tmp('plain.csv');
    await writeTable(p, SCHEMA, [sampleBatch()]);
    const all = await (await openTable(p)).readAll();
    expect(all.columns.text).toEqual(STRINGS);
    expect(all.columns.i32[0]).toBe('-7');
    expect(all.columns.flag[0]).toBe('true');
    expect(readFileSync(p, 'utf8').split('\n')[0]).toBe('text,i32,i64,f32,f64,flag,embedding,probs');
  });

  it('NaN and ±Infinity survive the text formats inside float lists', async () => {
    const schema: WriteColumn[] = [{ name: 'v', type: 'list<float32>' }, { name: 'x', type: 'float64' }];
    const b = { numRows: 1, columns: { v: [new Float32Array([NaN, Infinity, -Infinity, -0])], x: [-Infinity] } };
    for (const ext of ['jsonl', 'csv', 'parquet', 'arrow']) {
      const p = tmp(`nan.${ext}`);
      await writeTable(p, schema, [b]);
      const all = await (await openTable(p, { types: ext === 'csv' || ext === 'jsonl' ? { v: 'list<float>', x: 'float' } : undefined })).readAll();
      const v = all.columns.v[0] as Float32Array;
      expect(Number.isNaN(v[0]), ext).toBe(true);
      expect([v[1], v[2]]).toEqual([Infinity, -Infinity]);
      // JSON has no -Infinity scalar: JSONL writes null there; the others keep it.
      expect(all.columns.x[0]).toBe(ext === 'jsonl' ? null : -Infinity);
    }
  });

  it('zero rows still makes a readable file with the schema', async () => {
    for (const ext of ['parquet', 'arrow', 'csv']) {
      const p = tmp(`empty-rows.${ext}`);
      await writeTable(p, SCHEMA, []);
      const r = await openTable(p);
      expect(r.schema.map((c) => c.name)).toEqual(SCHEMA.map((c) => c.name));
      expect((await r.readAll()).numRows).toBe(0);
    }
  });
});

describe('files are readable by the libraries directly', () => {
  it('Parquet: hyparquet reads our file, row groups are as requested, LIST<FLOAT> is bit-exact', async () => {
    const p = tmp('direct.parquet');
    const b = sampleBatch();
    await writeTable(p, SCHEMA, [b, b, b], { rowGroupRows: 4 });
    const file = await asyncBufferFromFile(p);
    const meta = await parquetMetadataAsync(file);
    expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual([4, 4, 4, 4, 4, 4, 4, 2]);
    const rows = await parquetReadObjects({ file });
    expect(rows.length).toBe(30);
    expect(rows[0].text).toBe(STRINGS[0]);
    expect(rows[3].i32).toBe(-2147483648);
    expect(rows[5].i64).toBe(9007199254740991n);
    const emb = b.columns.embedding[1] as Float32Array;
    expect(bits(Float32Array.from(rows[11].embedding as number[]))).toEqual(bits(emb));
    const lists = meta.schema.filter((e) => e.name === 'embedding' || e.name === 'list' || e.name === 'element').map((e) => [e.name, e.repetition_type, e.converted_type ?? e.type]);
    expect(lists).toEqual([
      ['embedding', 'OPTIONAL', 'LIST'],
      ['list', 'REPEATED', undefined],
      ['element', 'REQUIRED', 'FLOAT'],
      ['list', 'REPEATED', undefined],
      ['element', 'REQUIRED', 'DOUBLE'],
    ]);
  });

  it('Arrow IPC file: apache-arrow tableFromIPC reads it; List<Float32> is bit-exact', async () => {
    const p = tmp('direct.arrow');
    const b = sampleBatch();
    await writeTable(p, SCHEMA, [b, b]);
    const bytes = readFileSync(p);
    expect(bytes.subarray(0, 6).toString()).toBe('ARROW1');
    const t = tableFromIPC(bytes);
    expect(t.numRows).toBe(20);
    expect(t.batches.length).toBe(2);
    expect(String(t.schema.fields.find((f) => f.name === 'embedding')!.type)).toBe('List<Float32>');
    expect(t.getChild('text')!.get(3)).toBe(STRINGS[3]);
    const got = t.getChild('embedding')!.get(10)!.toArray() as Float32Array;
    expect(bits(got)).toEqual(bits(b.columns.embedding[0] as Float32Array));
  });

  it('Arrow IPC stream (.arrows) is read back by apache-arrow and by openTable', async () => {
    const p = tmp('direct.arrows');
    await writeTable(p, SCHEMA, [sampleBatch()]);
    expect(readFileSync(p).subarray(0, 6).toString()).not.toBe('ARROW1');
    expect(tableFromIPC(readFileSync(p)).numRows).toBe(10);
    // Stream format under a file-format extension is detected from the bytes.
    const q = tmp('stream-as.arrow');
    writeFileSync(q, readFileSync(p));
    expect((await (await openTable(q)).readAll()).numRows).toBe(10);
  });
});

describe('real datasets in ../shared/data', () => {
  it('dacon-sentence-type/train.csv: 16,541 rows x 7 columns as SOURCE.md says', async () => {
    const r = await openTable(sharedPath('data', 'dacon-sentence-type', 'train.csv'));
    expect(r.schema.map((c) => c.name)).toEqual(['ID', '문장', '유형', '극성', '시제', '확실성', 'label']);
    const all = await r.readAll();
    expect(all.numRows).toBe(16_541);
    expect(all.columns.ID[0]).toBe('TRAIN_00000');
    expect(all.columns['문장'][0]).toBe('0.75%포인트 금리 인상은 1994년 이후 28년 만에 처음이다.');
    // label == 유형-극성-시제-확실성 on every row (SOURCE.md), a good check that no row is mis-split.
    for (let i = 0; i < all.numRows; i++) {
      const c = all.columns;
      expect(c.label[i]).toBe(`${c['유형'][i]}-${c['극성'][i]}-${c['시제'][i]}-${c['확실성'][i]}`);
    }
    const counts: Record<string, number> = {};
    for (const t of all.columns['유형'] as string[]) counts[t] = (counts[t] ?? 0) + 1;
    expect(counts).toEqual({ 사실형: 13_558, 추론형: 2_151, 대화형: 575, 예측형: 257 });
    const lens = (all.columns['문장'] as string[]).map((s) => [...s].length);
    expect(Math.min(...lens)).toBe(7);
    expect(Math.max(...lens)).toBe(534);
    expect(r.stats.invalidUtf8).toBe(0);
  });

  it('nsmc ratings_train.txt (TSV, pandas-quoted): 150,000 rows, label counts, quoted reviews decoded', async () => {
    const r = await openTable(sharedPath('data', 'nsmc', 'ratings_train.txt'), { format: 'tsv', types: { label: 'int' } });
    expect(r.schema).toEqual([
      { name: 'id', type: 'string' },
      { name: 'document', type: 'string' },
      { name: 'label', type: 'int' },
    ]);
    let n = 0;
    let pos = 0;
    let empty = 0;
    let quoted = '';
    for await (const b of r.batches(10_000)) {
      n += b.numRows;
      for (let i = 0; i < b.numRows; i++) {
        pos += b.columns.label[i] as number;
        if (b.columns.document[i] === null) empty++;
        if (b.columns.id[i] === '10122280') quoted = b.columns.document[i] as string;
      }
    }
    expect(n).toBe(150_000);
    expect(pos).toBe(74_827);
    expect(empty).toBe(5); // "5 train documents are empty"
    // The file's own quirk (SOURCE.md): quotes doubled by a second pandas pass; one CSV decoding leaves one level.
    expect(quoted.startsWith('"영화 끝나갈때쯤에')).toBe(true);
    expect(quoted.endsWith('""ㅈ같다."""')).toBe(true);
  });

  it('korean-hate-speech/train.tsv: 7,896 rows; RFC-quoted comments decoded', async () => {
    const all = await (await openTable(sharedPath('data', 'korean-hate-speech', 'train.tsv'))).readAll();
    expect(all.numRows).toBe(7_896);
    const hate: Record<string, number> = {};
    for (const h of all.columns.hate as string[]) hate[h] = (hate[h] ?? 0) + 1;
    expect(hate).toEqual({ none: 3_486, offensive: 2_499, hate: 1_911 });
    expect(all.columns.comments).toContain('결국 준영과 다솜은 바람을 피게되고 무인도로 떠난다에 한표 ㅋㅋㅋ 자연인이 되어 "나는자연인이다"에 출연하게된다');
  });

  it('nsmc-raw-ratings (TSV with no quoting): quote "none" reads it exactly; "auto" keeps row structure', async () => {
    const p = sharedPath('data', 'nsmc-raw-ratings', 'reviews_100k.tsv');
    const none = await (await openTable(p, { quote: 'none', columns: ['review_id', 'document'] })).readAll();
    expect(none.numRows).toBe(100_000);
    const i = (none.columns.review_id as string[]).indexOf('72632');
    expect(none.columns.document[i]).toBe('"온국민이 감상하시라" 라는 단어에 싸가지와 불쾌감을 줌/목적:4500만');
    const auto = await (await openTable(p, { columns: ['review_id', 'document'] })).readAll();
    expect(auto.numRows).toBe(100_000);
    expect(auto.columns.document[i]).toBe(none.columns.document[i]);
    // RFC 4180 cannot read this file: the error names the line.
    await expect(readFile(p, { quote: 'rfc4180' })).rejects.toThrow(/reviews_100k\.tsv:\d+: malformed quoted field/);
  });

  it('livedoor-news JSONL: 7,367 articles, 9 categories', async () => {
    const r = await openTable(sharedPath('data', 'livedoor-news', 'livedoor_news.jsonl'), { columns: ['category', 'title'] });
    expect(r.schema).toEqual([
      { name: 'category', type: 'string' },
      { name: 'title', type: 'string' },
    ]);
    const cats = new Set<string>();
    let n = 0;
    for await (const b of r.batches(500)) {
      n += b.numRows;
      for (const c of b.columns.category as string[]) cats.add(c);
    }
    expect(n).toBe(7_367);
    expect(cats.size).toBe(9);
  });
});

describe('streaming', () => {
  async function collect(it: AsyncIterable<ReadBatch>) {
    const parts: ReadBatch[] = [];
    for await (const b of it) parts.push(b);
    return parts;
  }

  for (const ext of ['parquet', 'arrow', 'jsonl', 'csv', 'tsv']) {
    it(`.${ext}: small batches give the same rows as readAll, in order`, async () => {
      const p = tmp(`stream.${ext}`);
      const b = sampleBatch();
      await writeTable(p, SCHEMA, [b, b, b], { rowGroupRows: 7 });
      const opts = ext === 'parquet' || ext === 'arrow' ? {} : { types: TEXT_TYPES };
      const r = await openTable(p, opts);
      const all = await r.readAll();
      const parts = await collect(r.batches(3));
      expect(parts.map((x) => x.numRows)).toEqual([3, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
      for (const c of SCHEMA) expect(parts.flatMap((x) => x.columns[c.name])).toEqual(all.columns[c.name]);
    });
  }

  it('column selection returns only those columns, in the requested order', async () => {
    for (const ext of ['parquet', 'arrow', 'jsonl', 'csv']) {
      const p = tmp(`sel.${ext}`);
      await writeTable(p, SCHEMA, [sampleBatch()]);
      const r = await openTable(p, { columns: ['f64', 'text'] });
      expect(r.schema.map((c) => c.name)).toEqual(['f64', 'text']);
      const all = await r.readAll();
      expect(Object.keys(all.columns)).toEqual(['f64', 'text']);
      expect(all.columns.text).toEqual(STRINGS);
    }
  });

  const N = 200_000;
  it(`bounded memory: ${N} rows of JSONL and Parquet read in batches of 1,000 hold at most one batch/row group`, async () => {
    const schema: WriteColumn[] = [
      { name: 'id', type: 'int32' },
      { name: 'text', type: 'string' },
    ];
    const jp = tmp('big.jsonl');
    const pp = tmp('big.parquet');
    const wj = await openTableWriter(jp, schema);
    const wp = await openTableWriter(pp, schema, { rowGroupRows: 1000 });
    for (let s = 0; s < N; s += 5000) {
      const ids = Array.from({ length: 5000 }, (_, i) => s + i);
      const batch = { numRows: 5000, columns: { id: ids, text: ids.map((i) => `문서 ${i}`) } };
      await wj.write(batch);
      await wp.write(batch);
    }
    await wj.close();
    await wp.close();
    for (const p of [jp, pp]) {
      const r = await openTable(p);
      let n = 0;
      let next = 0;
      for await (const b of r.batches(1000)) {
        expect(b.numRows).toBe(1000);
        expect(b.columns.id[0]).toBe(next);
        next += b.numRows;
        n += b.numRows;
        expect(r.stats.bufferedRows).toBeLessThanOrEqual(1000);
      }
      expect(n).toBe(N);
      expect(r.stats.peakBufferedRows).toBeGreaterThan(0);
      expect(r.stats.peakBufferedRows).toBeLessThanOrEqual(1000);
      expect(r.stats.bufferedRows).toBe(0);
      expect(r.numRows).toBe(p.endsWith('.parquet') ? N : undefined);
    }
  });

  it('breaking out of batches() early releases the file', async () => {
    const p = tmp('early.jsonl');
    await writeTable(p, SCHEMA, [sampleBatch()]);
    const r = await openTable(p);
    for await (const b of r.batches(2)) {
      expect(b.numRows).toBe(2);
      break;
    }
    expect(r.stats.bufferedRows).toBe(0);
  });
});

describe('text format details', () => {
  it('JSONL: CRLF, BOM, blank lines, last line without newline', async () => {
    const p = tmp('crlf.jsonl');
    writeFileSync(p, '\uFEFF{"a":1,"b":"x"}\r\n\r\n   \n{"a":2,"b":"y"}\r\n{"a":3}');
    const all = await (await openTable(p)).readAll();
    expect(all.columns).toEqual({ a: [1, 2, 3], b: ['x', 'y', null] });
  });

  it('CSV: CRLF, BOM, quoted commas, doubled quotes, newlines inside quotes, last line without newline', async () => {
    const p = tmp('rfc.csv');
    writeFileSync(p, '\uFEFFid,text\r\n1,"a, b"\r\n2,"say ""hi"""\r\n3,"two\r\nlines"\r\n\r\n4,plain "quote" inside\r\n5,');
    const r = await openTable(p);
    expect(r.schema.map((c) => c.name)).toEqual(['id', 'text']);
    const all = await r.readAll();
    expect(all.columns.text).toEqual(['a, b', 'say "hi"', 'two\r\nlines', 'plain "quote" inside', null]);
  });

  it('parseRecord: auto mode falls back to literal text for a malformed quoted field', () => {
    expect(parseRecord('"a" b\tc', '\t', 'auto', new Set())).toMatchObject({ kind: 'malformed', quoteStart: 0 });
    expect(parseRecord('"a" b\tc', '\t', 'auto', new Set([0]))).toMatchObject({ kind: 'ok', fields: ['"a" b', 'c'] });
    expect(parseRecord('"a\tb"\tc', '\t', 'rfc4180', new Set())).toMatchObject({ kind: 'ok', fields: ['a\tb', 'c'] });
    expect(parseRecord('"open\tx', '\t', 'rfc4180', new Set())).toMatchObject({ kind: 'incomplete', quoteStart: 0 });
  });

  it('TSV auto: an unclosed quote at the start of a field does not swallow the following lines', async () => {
    const p = tmp('auto.tsv');
    writeFileSync(p, 'a\tb\n"unclosed start\t1\nnext "row"\t2\n"proper ""quoted"" one"\t3\n');
    const all = await (await openTable(p)).readAll();
    expect(all.columns.a).toEqual(['"unclosed start', 'next "row"', 'proper "quoted" one']);
    expect(all.columns.b).toEqual(['1', '2', '3']);
    await expect(readFile(p, { quote: 'rfc4180' })).rejects.toThrow(/auto\.tsv:\d+/);
  });

  it('invalid UTF-8: replaced with U+FFFD and counted per row, or an error naming the line', async () => {
    const bad = Buffer.concat([Buffer.from('id,text\n1,ok\n2,bad'), Buffer.from([0xff, 0xfe]), Buffer.from('\n3,"multi\nline'), Buffer.from([0xc3]), Buffer.from('"\n')]);
    const p = tmp('bad-utf8.csv');
    writeFileSync(p, bad);
    const r = await openTable(p);
    const all = await r.readAll();
    expect(all.columns.text).toEqual(['ok', 'bad\uFFFD\uFFFD', 'multi\nline\uFFFD']);
    expect(r.stats.invalidUtf8).toBe(2);
    await expect(readFile(p, { invalidUtf8: 'error' })).rejects.toThrow(/bad-utf8\.csv:3: invalid UTF-8/);

    const j = tmp('bad-utf8.jsonl');
    writeFileSync(j, Buffer.concat([Buffer.from('{"t":"a'), Buffer.from([0xe3, 0x81]), Buffer.from('"}\n{"t":"fine"}\n')]));
    const rj = await openTable(j);
    expect((await rj.readAll()).columns.t).toEqual(['a\uFFFD', 'fine']);
    expect(rj.stats.invalidUtf8).toBe(1);
  });

  it('JSONL: a value contradicting the inferred type is an error naming the line and the fix', async () => {
    const p = tmp('drift.jsonl');
    writeFileSync(p, '{"x":1}\n{"x":2}\n{"x":"three"}\n');
    await expect(readFile(p, { inferRows: 2 })).rejects.toThrow(/drift\.jsonl:3: column "x" was inferred as int.*types/);
    const ok = await openTable(p, { inferRows: 2, types: { x: 'string' } });
    expect((await ok.readAll()).columns.x).toEqual(['1', '2', 'three']);
  });

  it('int64 beyond 2^53 is an error rather than a silently wrong number', async () => {
    for (const ext of ['parquet', 'arrow']) {
      const p = tmp(`big-int.${ext}`);
      await writeTable(p, [{ name: 'id', type: 'int64' }], [{ numRows: 2, columns: { id: [1n, 2n ** 60n] } }]);
      await expect(readFile(p)).rejects.toThrow(/int64 value 1152921504606846976 is outside the safe integer range/);
    }
  });
});

describe('errors', () => {
  it('missing file', async () => {
    await expect(openTable(tmp('nope.parquet'))).rejects.toThrow(/nope\.parquet: no such file/);
  });

  it('unknown extension lists the supported ones', async () => {
    await expect(openTable(tmp('data.xlsx'))).rejects.toThrow(/unsupported file extension "\.xlsx"; supported: \.parquet.*\.arrow.*\.jsonl, \.ndjson, \.csv, \.tsv/);
    await expect(openTableWriter(tmp('out.txt'), SCHEMA)).rejects.toThrow(/unsupported file extension/);
  });

  it('missing column names it and lists the existing ones (every format)', async () => {
    for (const ext of ['parquet', 'arrow', 'jsonl', 'csv', 'tsv']) {
      const p = tmp(`cols.${ext}`);
      await writeTable(p, SCHEMA.slice(0, 2), [{ numRows: 1, columns: { text: ['a'], i32: [1] } }]);
      await expect(openTable(p, { columns: ['text', 'label'] }), ext).rejects.toThrow(/column "label" not found; columns are: "text", "i32"/);
    }
  });

  it('malformed CSV row names its line', async () => {
    const p = tmp('fields.csv');
    writeFileSync(p, 'a,b\n1,2\n"x\ny",3\n4,5,6\n');
    await expect(readFile(p)).rejects.toThrow(/fields\.csv:5: expected 2 fields, found 3/);
    const q = tmp('quote.csv');
    writeFileSync(q, 'a,b\n1,2\n"x"y,3\n');
    await expect(readFile(q)).rejects.toThrow(/quote\.csv:3: malformed quoted field/);
    const u = tmp('unterminated.csv');
    writeFileSync(u, 'a,b\n1,2\n"never closed,3\n4,5\n');
    await expect(readFile(u)).rejects.toThrow(/unterminated\.csv:3: unterminated quoted field/);
  });

  it('malformed JSON line names its line', async () => {
    const p = tmp('bad.jsonl');
    writeFileSync(p, '{"a":1}\n\n{"a":2,}\n');
    await expect(readFile(p)).rejects.toThrow(/bad\.jsonl:3: invalid JSON/);
    const q = tmp('array.jsonl');
    writeFileSync(q, '{"a":1}\n[1,2]\n');
    await expect(readFile(q)).rejects.toThrow(/array\.jsonl:2: expected a JSON object/);
  });

  it('empty file', async () => {
    for (const ext of ['parquet', 'arrow', 'jsonl', 'csv']) {
      const p = tmp(`zero.${ext}`);
      writeFileSync(p, '');
      await expect(openTable(p)).rejects.toThrow(/empty file/);
    }
    const h = tmp('blank-header.csv');
    writeFileSync(h, '\n1,2\n');
    await expect(openTable(h)).rejects.toThrow(/header row is empty/);
  });

  it('not actually the format', async () => {
    const p = tmp('fake.parquet');
    writeFileSync(p, 'id,text\n1,a\n');
    await expect(openTable(p)).rejects.toThrow(/fake\.parquet/);
    const a = tmp('fake.arrow');
    writeFileSync(a, 'hello world, not arrow');
    await expect(openTable(a)).rejects.toThrow(/fake\.arrow/);
  });

  it('writer validates batches: missing column, wrong length, wrong type, null in non-nullable', async () => {
    const schema: WriteColumn[] = [
      { name: 'id', type: 'int32', nullable: false },
      { name: 'emb', type: 'list<float32>' },
    ];
    const cases: [RecordBatchLike, RegExp][] = [
      [{ numRows: 1, columns: { id: [1] } }, /missing column "emb"/],
      [{ numRows: 2, columns: { id: [1], emb: [null, null] } }, /"id" has 1 values but batch.numRows is 2/],
      [{ numRows: 1, columns: { id: [1.5], emb: [null] } }, /"id" \(int32\) row 0: expected an int32/],
      [{ numRows: 1, columns: { id: [null], emb: [null] } }, /"id" row 0: null in a non-nullable column/],
      [{ numRows: 1, columns: { id: [1], emb: ['x'] } }, /"emb" \(list<float32>\) row 0/],
    ];
    for (const ext of ['parquet', 'arrow', 'jsonl', 'csv']) {
      for (const [batch, re] of cases) {
        const p = tmp(`val.${ext}`);
        const w = await openTableWriter(p, schema);
        await expect(w.write(batch), ext).rejects.toThrow(re);
        expect(existsSync(p)).toBe(false);
      }
    }
  });
});

describe('atomic writes', () => {
  const tmpFiles = () => readdirSync(dir).filter((f) => f.includes('.tmp-'));

  for (const ext of ['parquet', 'arrow', 'jsonl', 'csv']) {
    it(`.${ext}: target untouched until close, temp file next to it, abort leaves nothing`, async () => {
      const p = tmp(`atomic.${ext}`);
      writeFileSync(p, 'OLD CONTENT');
      const w = await openTableWriter(p, SCHEMA, { rowGroupRows: 2 });
      await w.write(sampleBatch());
      expect(readFileSync(p, 'utf8')).toBe('OLD CONTENT');
      const temps = tmpFiles();
      expect(temps.length).toBe(1);
      expect(temps[0]).toMatch(new RegExp(`^\\.atomic\\.${ext}\\.tmp-${process.pid}-[0-9a-f]{8}$`));
      await w.abort();
      expect(readFileSync(p, 'utf8')).toBe('OLD CONTENT');
      expect(tmpFiles()).toEqual([]);

      const w2 = await openTableWriter(p, SCHEMA);
      await w2.write(sampleBatch());
      expect(readFileSync(p, 'utf8')).toBe('OLD CONTENT');
      await w2.close();
      expect(tmpFiles()).toEqual([]);
      expect((await (await openTable(p, ext === 'csv' || ext === 'jsonl' ? { types: TEXT_TYPES } : {})).readAll()).numRows).toBe(10);
      await expect(w2.write(sampleBatch())).rejects.toThrow(/closed/);
    });
  }

  it('a writer that fails mid-way leaves no target and no temp file', async () => {
    const p = tmp('midway.parquet');
    const w = await openTableWriter(p, SCHEMA, { rowGroupRows: 3 });
    await w.write(sampleBatch());
    const broken = sampleBatch();
    (broken.columns.i32 as unknown[])[4] = 'not a number';
    await expect(w.write(broken)).rejects.toThrow(/"i32"/);
    expect(existsSync(p)).toBe(false);
    expect(tmpFiles()).toEqual([]);
    await expect(w.close()).rejects.toThrow(/closed/);
    expect(existsSync(p)).toBe(false);
  });

  it('a producer that throws while writing: abort() in finally leaves no target', async () => {
    const p = tmp('producer.jsonl');
    const w = await openTableWriter(p, SCHEMA);
    await expect(
      (async () => {
        try {
          await w.write(sampleBatch());
          throw new Error('model crashed');
        } catch (e) {
          await w.abort();
          throw e;
        }
      })(),
    ).rejects.toThrow('model crashed');
    expect(existsSync(p)).toBe(false);
    expect(tmpFiles()).toEqual([]);
  });
});

describe('property: arbitrary unicode strings round-trip', () => {
  const str = fc.option(fc.string({ unit: 'binary', maxLength: 40 }), { nil: null, freq: 5 });
  const rows = fc.array(fc.tuple(str, str, fc.option(fc.integer({ min: -2147483648, max: 2147483647 }), { nil: null })), { minLength: 1, maxLength: 30 });
  const schema: WriteColumn[] = [
    { name: 'a', type: 'string' },
    { name: 'b', type: 'string' },
    { name: 'n', type: 'int32' },
  ];

  for (const ext of ['csv', 'tsv', 'jsonl', 'parquet', 'arrow']) {
    it(`.${ext}`, async () => {
      let k = 0;
      await fc.assert(
        fc.asyncProperty(rows, async (rs) => {
          const p = tmp(`prop-${k++}.${ext}`);
          const batch = { numRows: rs.length, columns: { a: rs.map((r) => r[0]), b: rs.map((r) => r[1]), n: rs.map((r) => r[2]) } };
          await writeTable(p, schema, [batch]);
          const all = await (await openTable(p, { types: ext === 'csv' || ext === 'tsv' || ext === 'jsonl' ? { a: 'string', b: 'string', n: 'int' } : undefined })).readAll();
          rmSync(p);
          expect(all.columns).toEqual(batch.columns);
        }),
        { numRuns: ext === 'parquet' || ext === 'arrow' ? 50 : 150 },
      );
    });
  }
});
