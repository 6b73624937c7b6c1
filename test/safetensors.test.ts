import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/model/errors.js';
import {
  bf16BitsToF32, decodeFloats, encodeFloats, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits,
  parseSafetensors, readSafetensors, readSafetensorsHeader, writeSafetensors, type TensorToWrite,
} from '../src/model/safetensors.js';
import { GOLDEN_CASES, sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-train-st-');

/** A safetensors file from a header object (or raw header text) and a data section. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Buffer {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(h.byteLength));
  return Buffer.concat([prefix, h, data]);
}

/** Writes `bytes` to a temp file and expects both readers to reject it with a ModelFormatError matching `re`. */
async function expectRejected(bytes: Uint8Array, re: RegExp): Promise<void> {
  const file = join(tmp.make(), 'model.safetensors');
  writeFileSync(file, bytes);
  await expect(readSafetensors(file)).rejects.toThrow(ModelFormatError);
  await expect(readSafetensors(file)).rejects.toThrow(re);
  expect(() => parseSafetensors(bytes, file)).toThrow(re);
  // The message names the file.
  await expect(readSafetensors(file)).rejects.toThrow(file);
}

const f32 = (n: number): Uint8Array => new Uint8Array(new Float32Array(n).buffer);

describe('float16 / bfloat16 conversions', () => {
  it('decodes hand-computed float16 bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0x3c00, 1], [0xc000, -2], [0x0000, 0], [0x3555, 0.333251953125], [0x7bff, 65504],
      [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14], [0x8001, -(2 ** -24)],
      [0x7c00, Infinity], [0xfc00, -Infinity], [0x3e00, 1.5],
    ];
    for (const [bits, value] of cases) expect(f16BitsToF32(bits)).toBe(value);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
    expect(f16BitsToF32(0xfe01)).toBeNaN();
    // The table-driven bulk path agrees with the scalar one.
    const bits = new Uint16Array(cases.map(([b]) => b));
    expect([...decodeFloats('F16', new Uint8Array(bits.buffer))]).toEqual(cases.map(([, v]) => v));
  });

  it('decodes hand-computed bfloat16 bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0x3f80, 1], [0xc000, -2], [0x4049, 3.140625], [0x0001, 2 ** -133], [0x0080, 2 ** -126],
      [0x7f80, Infinity], [0xff80, -Infinity], [0x7f7f, 3.3895313892515355e38],
    ];
    for (const [bits, value] of cases) expect(bf16BitsToF32(bits)).toBe(value);
    expect(bf16BitsToF32(0x7fc0)).toBeNaN();
    const bits = new Uint16Array(cases.map(([b]) => b));
    expect([...decodeFloats('BF16', new Uint8Array(bits.buffer))]).toEqual(cases.map(([, v]) => v));
  });

  it('encodes float32 -> float16 with round-to-nearest-even, overflow and subnormals', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds to inf
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie -> even (zero)
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 -> even
    expect(f32ToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the normals
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f16BitsToF32(f32ToF16Bits(NaN))).toBeNaN();
  });

  it('encodes float32 -> bfloat16 with round-to-nearest-even', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16Bits(Math.PI)).toBe(0x4049);
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
    expect(bf16BitsToF32(f32ToBf16Bits(NaN))).toBeNaN();
  });

  it('every float16 value survives decode -> encode', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) continue;
      expect(f32ToF16Bits(v)).toBe(h);
    }
  });
});

describe('writeSafetensors -> readSafetensors round trip', () => {
  const values = Float32Array.from([1, -2, 0.1, 1e-7, 65504, -3.5, 2 ** -24, 123.456, 0, -0]);

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`round-trips ${dtype}`, async () => {
      const file = join(tmp.make(), 'model.safetensors');
      const tensors = new Map<string, TensorToWrite>([
        ['b.weight', { dtype, shape: [2, 5], data: values }],
        ['a.bias', { dtype, shape: [3], data: values.subarray(0, 3) }],
        ['scalar', { dtype, shape: [], data: values.subarray(3, 4) }],
        ['empty', { dtype, shape: [0, 4], data: new Float32Array(0) }],
      ]);
      writeSafetensors(file, tensors);
      const bytes = readFileSync(file);
      const headerLength = Number(bytes.readBigUInt64LE(0));
      expect(headerLength % 8).toBe(0);
      expect(JSON.parse(bytes.subarray(8, 8 + headerLength).toString()).__metadata__).toEqual({ format: 'pt' });

      const loaded = await readSafetensors(file);
      const parsed = parseSafetensors(bytes, file);
      for (const out of [loaded, parsed]) {
        expect([...out.keys()].sort()).toEqual(['a.bias', 'b.weight', 'empty', 'scalar']);
        for (const [name, t] of tensors) {
          const got = out.get(name)!;
          expect(got.dtype).toBe(dtype);
          expect(got.shape).toEqual(t.shape);
          // Expected = the value rounded to the stored type and widened back.
          const want = decodeFloats(dtype, encodeFloats(dtype, t.data as Float32Array));
          expect([...got.data]).toEqual([...want]);
        }
      }
      if (dtype === 'F32') expect([...loaded.get('b.weight')!.data]).toEqual([...values]);
    });
  }

  it('reads hand-written F16 / BF16 bytes to the exact values', async () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00, 0x7e00]);
    const bf16 = new Uint16Array([0x3f80, 0xc000, 0x0001, 0x7f80]);
    const data = Buffer.concat([Buffer.from(f16.buffer), Buffer.from(bf16.buffer)]);
    const bytes = build({
      h: { dtype: 'F16', shape: [5], data_offsets: [0, 10] },
      b: { dtype: 'BF16', shape: [4], data_offsets: [10, 18] },
    }, data);
    const t = parseSafetensors(bytes);
    const h = [...t.get('h')!.data];
    expect(h.slice(0, 4)).toEqual([1, -2, 2 ** -24, Infinity]);
    expect(h[4]).toBeNaN();
    expect([...t.get('b')!.data]).toEqual([1, -2, 2 ** -133, Infinity]);
  });

  it('uses data_offsets, not header order, and skips integer buffers and __metadata__', async () => {
    const data = new Float32Array([10, 11, 20, 21, 22]);
    const pos = new BigInt64Array([0n, 1n, 2n]);
    const bytes = build({
      __metadata__: { format: 'pt' },
      first: { dtype: 'F32', shape: [3], data_offsets: [8, 20] },
      second: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      'embeddings.position_ids': { dtype: 'I64', shape: [1, 3], data_offsets: [20, 44] },
    }, Buffer.concat([Buffer.from(data.buffer), Buffer.from(pos.buffer)]));
    const t = parseSafetensors(bytes);
    expect([...t.keys()].sort()).toEqual(['first', 'second']);
    expect([...t.get('first')!.data]).toEqual([20, 21, 22]);
    expect([...t.get('second')!.data]).toEqual([10, 11]);
    const file = join(tmp.make(), 'x.safetensors');
    writeFileSync(file, bytes);
    expect(readSafetensorsHeader(file).tensors.map((x) => x.name)).toContain('embeddings.position_ids');
    expect([...(await readSafetensors(file, { select: (i) => i.name === 'first' })).keys()]).toEqual(['first']);
  });

  it('gives zero-copy views for aligned F32 in memory', () => {
    const file = join(tmp.make(), 'model.safetensors');
    writeSafetensors(file, new Map([['w', { dtype: 'F32', shape: [4], data: new Float32Array([1, 2, 3, 4]) }]]));
    const bytes = new Uint8Array(readFileSync(file));
    const t = parseSafetensors(bytes).get('w')!;
    expect(t.data.buffer).toBe(bytes.buffer);
    bytes[bytes.byteLength - 1] ^= 0x80; // flip the sign of the last float through the file buffer
    expect(t.data[3]).toBe(-4);
  });
});

describe('golden model.safetensors files', () => {
  it.each(GOLDEN_CASES)('%s loads with the right names and shapes', async (name) => {
    const file = sharedPath('golden', name, 'model.safetensors');
    const config = JSON.parse(readFileSync(sharedPath('golden', name, 'config.json'), 'utf8'));
    const t = await readSafetensors(file);
    const prefix = name.includes('seqcls') ? 'bert.' : '';
    const H = config.hidden_size;
    expect(t.size).toBe(5 + 16 * config.num_hidden_layers + 2 + (name.includes('seqcls') ? 2 : 0));
    expect(t.get(`${prefix}embeddings.word_embeddings.weight`)!.shape).toEqual([config.vocab_size, H]);
    expect(t.get(`${prefix}embeddings.position_embeddings.weight`)!.shape).toEqual([config.max_position_embeddings, H]);
    expect(t.get(`${prefix}encoder.layer.1.intermediate.dense.weight`)!.shape).toEqual([config.intermediate_size, H]);
    expect(t.get(`${prefix}encoder.layer.1.output.dense.weight`)!.shape).toEqual([H, config.intermediate_size]);
    for (const v of t.values()) expect(v.dtype).toBe('F32');
    // The file reader and the in-memory parser agree bit for bit.
    const parsed = parseSafetensors(readFileSync(file), file);
    for (const [k, v] of t) expect(parsed.get(k)!.data).toEqual(v.data);
  });
});

describe('hostile safetensors files are Errors, never crashes', () => {
  const good = { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };

  it('file shorter than the length prefix', async () => {
    await expectRejected(new Uint8Array([1, 0, 0]), /too short|truncated/);
    await expectRejected(new Uint8Array(0), /too short|truncated/);
  });
  it('header length past the end of the file', async () => {
    await expectRejected(build(good, f32(4), 5000n), /header length 5000 runs past the end of the file/);
  });
  it('absurd header length', async () => {
    await expectRejected(build(good, f32(4), 1n << 60n), /absurd/);
  });
  it('header that is not JSON', async () => {
    await expectRejected(build('{"w": {"dtype": "F32", ', f32(4)), /not valid JSON/);
    await expectRejected(build('PK\u0003\u0004 not json at all', f32(4)), /not valid JSON/);
  });
  it('header that is not UTF-8', async () => {
    const bytes = build('"xx"');
    bytes[9] = 0xff;
    await expectRejected(bytes, /not valid UTF-8/);
  });
  it('header that is JSON but not an object, or has non-object entries', async () => {
    await expectRejected(build([1, 2, 3]), /not a JSON object/);
    await expectRejected(build({ w: [1, 2] }), /tensor "w": header entry is not an object/);
    await expectRejected(build({ w: null }), /tensor "w": header entry is not an object/);
    await expectRejected(build({ __metadata__: 'x' }), /__metadata__/);
  });
  it('unknown dtype', async () => {
    await expectRejected(build({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, f32(4)), /tensor "w": unknown dtype "F128"/);
    await expectRejected(build({ w: { shape: [1], data_offsets: [0, 4] } }, f32(1)), /tensor "w": unknown dtype/);
  });
  it('negative, fractional or non-numeric dims', async () => {
    await expectRejected(build({ w: { dtype: 'F32', shape: [-1, 4], data_offsets: [0, 16] } }, f32(4)), /tensor "w": shape \[-1,4\]/);
    await expectRejected(build({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, f32(1)), /tensor "w": shape/);
    await expectRejected(build({ w: { dtype: 'F32', shape: ['4'], data_offsets: [0, 16] } }, f32(4)), /tensor "w": shape/);
    await expectRejected(build({ w: { dtype: 'F32', shape: 4, data_offsets: [0, 16] } }, f32(4)), /tensor "w": shape is not an array/);
  });
  it('huge shapes do not allocate', async () => {
    await expectRejected(build({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 16] } }, f32(4)), /tensor "w": shape .* too many elements/);
    await expectRejected(build({ w: { dtype: 'F32', shape: [2 ** 30, 4], data_offsets: [0, 16] } }, f32(4)), /tensor "w": byte size 16 !=/);
  });
  it('malformed data_offsets', async () => {
    await expectRejected(build({ w: { dtype: 'F32', shape: [4], data_offsets: [0] } }, f32(4)), /tensor "w": data_offsets \[0\] is not \[begin, end\]/);
    await expectRejected(build({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16.5] } }, f32(4)), /tensor "w": data_offsets/);
    await expectRejected(build({ w: { dtype: 'F32', shape: [4], data_offsets: [-16, 0] } }, f32(4)), /tensor "w": data_offsets/);
    await expectRejected(build({ w: { dtype: 'F32', shape: [4], data_offsets: '0,16' } }, f32(4)), /tensor "w": data_offsets/);
    await expectRejected(build({ w: { dtype: 'F32', shape: [0], data_offsets: [16, 0] } }, f32(4)), /tensor "w": data_offsets \[16, 0\] end before begin/);
  });
  it('offsets beyond the data section', async () => {
    await expectRejected(build({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(3)), /tensor "w": data_offsets \[0, 16\] run past the end of the data section \(12 bytes\)/);
  });
  it('byte size that does not match shape x dtype', async () => {
    await expectRejected(build({ w: { dtype: 'F16', shape: [4], data_offsets: [0, 16] } }, f32(4)), /tensor "w": byte size 16 != \[4\] x F16 \(2 bytes\) = 8/);
  });
  it('overlapping tensors', async () => {
    await expectRejected(build({
      a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    }, f32(4)), /tensors "a" \[0, 12\] and "b" \[8, 16\] overlap/);
  });
  it('a golden file truncated mid-data', async () => {
    const bytes = readFileSync(sharedPath('golden', 'bert-tiny', 'model.safetensors'));
    await expectRejected(bytes.subarray(0, bytes.byteLength - 1000), /run past the end of the data section/);
    await expectRejected(bytes.subarray(0, 100), /runs past the end of the file/);
  });
  it('a dtype the encoder cannot use is rejected when selected', async () => {
    await expectRejected(build({ w: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor "w" has dtype U8/);
  });

  it('random corruption of a valid file is either read or a ModelFormatError (property)', () => {
    const file = join(tmp.make(), 'ok.safetensors');
    writeSafetensors(file, new Map<string, TensorToWrite>([
      ['a', { dtype: 'F32', shape: [2, 3], data: new Float32Array(6).fill(1) }],
      ['b', { dtype: 'F16', shape: [5], data: new Float32Array(5).fill(2) }],
    ]));
    const original = new Uint8Array(readFileSync(file));
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat(original.byteLength - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.nat(original.byteLength),
      (edits, cut) => {
        const bytes = original.slice(0, Math.max(cut, original.byteLength - 40));
        for (const [at, v] of edits) if (at < bytes.byteLength) bytes[at] = v;
        try {
          parseSafetensors(bytes, 'fuzz');
        } catch (err) {
          if (!(err instanceof ModelFormatError)) throw err;
        }
      }), { numRuns: 2000, seed: 42 });
  });
});
