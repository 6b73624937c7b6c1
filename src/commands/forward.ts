/**
 * `edu-train forward`: run the encoder on explicit token ids and print every output, in the layout
 * of ../shared/golden/<case>/expected.json. This is the conformance entry point.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadEncoder, type ForwardInputs, type ForwardOutputs } from '../encoder.js';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { addEncoderOptions, runtimeOptions, type EncoderCliOptions } from './common.js';

interface ForwardCliOptions extends EncoderCliOptions {
  inputs: string;
  output?: string;
}

export function registerForward(program: Command): void {
  const cmd = program
    .command('forward')
    .description('Run the encoder on token ids ({"input_ids", "attention_mask", "token_type_ids"}) and write all outputs as JSON');
  addEncoderOptions(cmd)
    .requiredOption('--inputs <file>', 'JSON file with input_ids, attention_mask and token_type_ids, each [batch][seq_len]')
    .option('--output <file>', 'where to write the JSON (default: stdout)')
    .action(async (opts: ForwardCliOptions) => {
      const inputs = readInputs(opts.inputs);
      const encoder = await loadEncoder(opts.modelDir, { ...runtimeOptions(opts), withoutTokenizer: true });
      try {
        const json = JSON.stringify(toJson(await encoder.forward(inputs)));
        if (opts.output) writeFileAtomic(opts.output, json + '\n');
        else process.stdout.write(json + '\n');
      } finally {
        encoder.dispose();
      }
    });
}

function readInputs(path: string): ForwardInputs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read --inputs ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || !('input_ids' in parsed)) {
    throw new UsageError(`${path} must be a JSON object with input_ids (and attention_mask, token_type_ids)`);
  }
  return parsed as ForwardInputs;
}

/** Nested arrays [batch][seq][hidden] etc., as in the golden expected.json files. */
function toJson(out: ForwardOutputs): Record<string, unknown> {
  const { batch, seqLen, hidden } = out.shape;
  const rows = (x: Float32Array, width: number) =>
    Array.from({ length: x.length / width }, (_, i) => Array.from(x.subarray(i * width, (i + 1) * width)));
  const json: Record<string, unknown> = {
    last_hidden_state: Array.from({ length: batch }, (_, b) =>
      rows(out.last_hidden_state.subarray(b * seqLen * hidden, (b + 1) * seqLen * hidden), hidden),
    ),
    mean_pooled: rows(out.mean_pooled, hidden),
    mean_pooled_normalized: rows(out.mean_pooled_normalized, hidden),
    cls: rows(out.cls, hidden),
  };
  if (out.pooler_output) json.pooler_output = rows(out.pooler_output, hidden);
  if (out.logits) json.logits = rows(out.logits, out.logits.length / batch);
  json.shapes = Object.fromEntries(
    Object.entries(json).map(([k, v]) => [k, shapeOf(v)]),
  );
  return json;
}

function shapeOf(v: unknown): number[] {
  const dims: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    dims.push(cur.length);
    cur = cur[0];
  }
  return dims;
}
