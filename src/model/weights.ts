/**
 * Checkpoint names -> the canonical names of src/native/addon-types.ts, and the shapes the config
 * implies. Pure functions over names and shapes, so the rules are testable without files.
 */
import type { ModelSpec } from './types.js';

/** Renames TF-era LayerNorm parameters (gamma/beta) to weight/bias. */
function renameLegacy(name: string): string {
  if (name.endsWith('.gamma')) return `${name.slice(0, -'gamma'.length)}weight`;
  if (name.endsWith('.beta')) return `${name.slice(0, -'beta'.length)}bias`;
  return name;
}

/**
 * The canonical name of a checkpoint tensor, or null when the encoder does not use it
 * (MLM / pretraining heads, position_ids, anything outside the expected set).
 */
export function canonicalName(name: string, spec: Pick<ModelSpec, 'weightPrefix' | 'head'>, expected: ReadonlySet<string>): string | null {
  let n = name;
  if (n.startsWith('classifier.')) {
    // The head lives beside the encoder, never under its prefix.
    n = renameLegacy(n);
  } else if (spec.weightPrefix && n.startsWith(spec.weightPrefix)) {
    n = renameLegacy(n.slice(spec.weightPrefix.length));
  } else if (spec.weightPrefix) {
    return null; // e.g. lm_head.*, cls.predictions.*, generator_*, discriminator_predictions.*
  } else {
    n = renameLegacy(n);
  }
  return expected.has(n) ? n : null;
}

/** Every tensor the encoder (and head) of `spec` needs, with its shape. */
export function expectedShapes(spec: Pick<ModelSpec, 'config' | 'head' | 'hasPooler'>): Map<string, number[]> {
  const c = spec.config;
  const H = c.hiddenSize;
  const E = c.embeddingSize;
  const I = c.intermediateSize;
  const m = new Map<string, number[]>();
  const linear = (name: string, out: number, inp: number): void => {
    m.set(`${name}.weight`, [out, inp]);
    m.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, n: number): void => {
    m.set(`${name}.weight`, [n]);
    m.set(`${name}.bias`, [n]);
  };
  m.set('embeddings.word_embeddings.weight', [c.vocabSize, E]);
  m.set('embeddings.position_embeddings.weight', [c.maxPositions, E]);
  m.set('embeddings.token_type_embeddings.weight', [c.typeVocabSize, E]);
  norm('embeddings.LayerNorm', E);
  if (E !== H) linear('embeddings_project', H, E);
  for (let i = 0; i < c.numLayers; i++) {
    const l = `encoder.layer.${i}`;
    linear(`${l}.attention.self.query`, H, H);
    linear(`${l}.attention.self.key`, H, H);
    linear(`${l}.attention.self.value`, H, H);
    linear(`${l}.attention.output.dense`, H, H);
    norm(`${l}.attention.output.LayerNorm`, H);
    linear(`${l}.intermediate.dense`, I, H);
    linear(`${l}.output.dense`, H, I);
    norm(`${l}.output.LayerNorm`, H);
  }
  // BERT's classification head reads the pooler output, so it needs the pooler either way.
  if (spec.hasPooler || spec.head.kind === 'bert') linear('pooler.dense', H, H);
  const N = spec.head.numLabels;
  if (spec.head.kind === 'bert') linear('classifier', N, H);
  if (spec.head.kind === 'roberta' || spec.head.kind === 'electra') {
    linear('classifier.dense', H, H);
    linear('classifier.out_proj', N, H);
  }
  return m;
}

const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Every problem of a loaded set against the expected shapes, in one list (empty = fine):
 * 'missing tensor X', 'X has shape [a, b], expected [b, a]'.
 */
export function weightProblems(expected: ReadonlyMap<string, number[]>, shapes: ReadonlyMap<string, number[]>): string[] {
  const problems: string[] = [];
  for (const [name, want] of expected) {
    const got = shapes.get(name);
    if (!got) problems.push(`missing tensor ${name}`);
    else if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
      problems.push(`${name} has shape ${shapeStr(got)}, expected ${shapeStr(want)}`);
    }
  }
  return problems;
}
