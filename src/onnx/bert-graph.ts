/**
 * The BERT-family forward pass (BERT, RoBERTa/XLM-R, ELECTRA; optional seqcls head) as an ONNX
 * graph over the canonical weights (src/native/addon-types.ts).
 *
 * The node pattern deliberately follows what torch.onnx.export writes for transformers' BertModel
 * (MatMul + Add with a transposed weight, Reshape/Transpose heads, Div by sqrt(d), additive
 * finfo.min mask, Softmax, Div/Erf/Add/Mul/Mul GELU, Add + LayerNormalization): those are the
 * patterns ONNX Runtime's graph optimiser fuses (Attention, BiasGelu, SkipLayerNormalization), so
 * a benchmark against this graph measures ONNX Runtime at its best, not a strawman.
 */
import type { ModelSpec } from '../model/types.js';
import { f, GraphBuilder } from './graph-builder.js';
import { DataType, type GraphDef, type ValueInfoDef } from './onnx-proto.js';

export type OnnxPooling = 'none' | 'mean' | 'cls' | 'pooler';
export const ONNX_POOLINGS: readonly OnnxPooling[] = ['none', 'mean', 'cls', 'pooler'];

/** Graph output names per pooling (the keys of edu-train's forward outputs and golden expected.json). */
export const POOLED_OUTPUT: Record<Exclude<OnnxPooling, 'none'>, string> = {
  mean: 'mean_pooled',
  cls: 'cls',
  pooler: 'pooler_output',
};

const FLOAT32_MIN = -3.4028234663852886e38; // torch.finfo(float32).min, as transformers' extended mask uses

/** [out, in] row-major -> [in, out], so that MatMul(x, Wt) = x W^T. */
function transpose(w: Float32Array, out: number, inp: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    const row = o * inp;
    for (let i = 0; i < inp; i++) t[i * out + o] = w[row + i];
  }
  return t;
}

export function buildBertGraph(spec: ModelSpec, weights: ReadonlyMap<string, Float32Array>, pooling: OnnxPooling): GraphDef {
  const c = spec.config;
  const H = c.hiddenSize;
  const E = c.embeddingSize;
  const heads = c.numHeads;
  const dh = H / heads;
  const g = new GraphBuilder();
  const w = (name: string): Float32Array => {
    const t = weights.get(name);
    if (!t) throw new Error(`internal: weight ${name} was not loaded`);
    return t;
  };
  const init = (name: string, dims: number[]): string => g.floatInit(name, w(name), dims);
  /** x W^T + b over the last axis (Linear with weight [out, in]). */
  const linear = (x: string, name: string, out: number, inp: number, as?: string): string => {
    const wt = g.floatInit(`${name}.weight_t`, transpose(w(`${name}.weight`), out, inp), [inp, out]);
    return g.op('Add', [g.op('MatMul', [x, wt]), init(`${name}.bias`, [out])], {}, as);
  };
  const layerNorm = (x: string, name: string, n: number, as?: string): string =>
    g.op('LayerNormalization', [x, init(`${name}.weight`, [n]), init(`${name}.bias`, [n])],
      { axis: -1, epsilon: f(c.layerNormEps) }, as);
  /** Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), in the node order torch exports. */
  const gelu = (x: string): string => {
    const erf = g.op('Erf', [g.op('Div', [x, g.floatConst(Math.SQRT2)])]);
    return g.op('Mul', [g.op('Mul', [x, g.op('Add', [erf, g.floatConst(1)])]), g.floatConst(0.5)]);
  };

  const ids = g.reserve('input_ids');
  const mask = g.reserve('attention_mask');
  const types = g.reserve('token_type_ids');

  // --- embeddings
  const word = g.op('Gather', [init('embeddings.word_embeddings.weight', [c.vocabSize, E]), ids], { axis: 0 });
  const tokenType = g.op('Gather', [init('embeddings.token_type_embeddings.weight', [c.typeVocabSize, E]), types], { axis: 0 });
  const posTable = init('embeddings.position_embeddings.weight', [c.maxPositions, E]);
  let position: string;
  if (c.positionStyle === 'roberta') {
    // transformers' create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad.
    const notPad = g.op('Cast', [g.op('Not', [g.op('Equal', [ids, g.int64Const(c.padTokenId)])])], { to: DataType.INT64 });
    const cumsum = g.op('CumSum', [notPad, g.int64Const(1)]);
    const positionIds = g.op('Add', [g.op('Mul', [cumsum, notPad]), g.int64Const(c.padTokenId)]);
    position = g.op('Gather', [posTable, positionIds], { axis: 0 });
  } else {
    // Absolute positions 0..S-1: the first S rows of the table, broadcast over the batch.
    const seqLen = g.op('Shape', [ids], { start: 1, end: 2 });
    position = g.op('Slice', [posTable, g.int64Const([0]), seqLen, g.int64Const([0])]);
  }
  let x = layerNorm(g.op('Add', [g.op('Add', [word, tokenType]), position]), 'embeddings.LayerNorm', E);
  if (E !== H) x = linear(x, 'embeddings_project', H, E);

  // --- additive key mask [B, 1, 1, S]: 0 for real tokens, finfo.min for padding (exp() of it is exactly 0)
  const maskF = g.op('Cast', [g.op('Unsqueeze', [mask, g.int64Const([1, 2])])], { to: DataType.FLOAT });
  const keyBias = g.op('Mul', [g.op('Sub', [g.floatConst(1), maskF]), g.floatConst(FLOAT32_MIN)]);

  const splitHeads = g.int64Const([0, 0, heads, dh]);
  const mergeHeads = g.int64Const([0, 0, H]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.layer.${l}`;
    const toHeads = (t: string, perm: number[]): string => g.op('Transpose', [g.op('Reshape', [t, splitHeads])], { perm });
    const q = toHeads(linear(x, `${p}.attention.self.query`, H, H), [0, 2, 1, 3]); // [B, h, S, d]
    const k = toHeads(linear(x, `${p}.attention.self.key`, H, H), [0, 2, 3, 1]); // [B, h, d, S]
    const v = toHeads(linear(x, `${p}.attention.self.value`, H, H), [0, 2, 1, 3]);
    const scores = g.op('Add', [g.op('Div', [g.op('MatMul', [q, k]), g.floatConst(Math.sqrt(dh))]), keyBias]);
    const probs = g.op('Softmax', [scores], { axis: -1 });
    const ctx = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), mergeHeads]);
    const attn = linear(ctx, `${p}.attention.output.dense`, H, H);
    x = layerNorm(g.op('Add', [attn, x]), `${p}.attention.output.LayerNorm`, H);
    const inter = gelu(linear(x, `${p}.intermediate.dense`, c.intermediateSize, H));
    const out = linear(inter, `${p}.output.dense`, H, c.intermediateSize);
    const last = l === c.numLayers - 1 ? 'last_hidden_state' : undefined;
    x = layerNorm(g.op('Add', [out, x]), `${p}.output.LayerNorm`, H, last);
  }

  const outputs: ValueInfoDef[] = [
    { name: 'last_hidden_state', elemType: DataType.FLOAT, shape: ['batch', 'sequence', H] },
  ];
  const pooledInfo = (name: string, width: number, doc: string): ValueInfoDef =>
    ({ name, elemType: DataType.FLOAT, shape: ['batch', width], doc });

  // --- pooling and head (only the nodes some output needs)
  let clsValue: string | null = null;
  const cls = (): string => (clsValue ??= g.op('Gather', [x, g.int64Const(0)], { axis: 1 }, pooling === 'cls' ? 'cls' : undefined));
  let poolerValue: string | null = null;
  const pooler = (): string =>
    (poolerValue ??= g.op('Tanh', [linear(cls(), 'pooler.dense', H, H)], {}, pooling === 'pooler' ? 'pooler_output' : undefined));

  if (pooling === 'mean') {
    // sum_t mask[t] h[t] / max(sum_t mask[t], 1e-9), as sentence-transformers' mean pooling.
    const m = g.op('Cast', [g.op('Unsqueeze', [mask, g.int64Const([2])])], { to: DataType.FLOAT });
    const sum = g.op('ReduceSum', [g.op('Mul', [x, m]), g.int64Const([1])], { keepdims: 0 });
    const count = g.op('Max', [g.op('ReduceSum', [m, g.int64Const([1])], { keepdims: 0 }), g.floatConst(1e-9)]);
    g.op('Div', [sum, count], {}, 'mean_pooled');
    outputs.push(pooledInfo('mean_pooled', H, 'masked mean of last_hidden_state over the sequence'));
  } else if (pooling === 'cls') {
    cls();
    outputs.push(pooledInfo('cls', H, 'last_hidden_state[:, 0]'));
  } else if (pooling === 'pooler') {
    pooler();
    outputs.push(pooledInfo('pooler_output', H, 'tanh(pooler.dense(last_hidden_state[:, 0]))'));
  }

  const head = spec.head;
  if (head.kind !== 'none') {
    const N = head.numLabels;
    if (head.kind === 'bert') {
      linear(pooler(), 'classifier', N, H, 'logits');
    } else {
      const dense = linear(cls(), 'classifier.dense', H, H);
      const act = head.kind === 'roberta' ? g.op('Tanh', [dense]) : gelu(dense);
      linear(act, 'classifier.out_proj', N, H, 'logits');
    }
    outputs.push(pooledInfo('logits', N, `${spec.architecture} head`));
  }

  const idsInfo = (name: string): ValueInfoDef => ({ name, elemType: DataType.INT64, shape: ['batch', 'sequence'] });
  return {
    name: spec.architecture,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [idsInfo('input_ids'), idsInfo('attention_mask'), idsInfo('token_type_ids')],
    outputs,
  };
}
