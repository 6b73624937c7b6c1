/**
 * The FineTuner N-API boundary: errors are JS Errors (never crashes), calls are serialised in order,
 * dispose() is safe with calls in flight, and a failed micro-batch leaves the gradients untouched.
 */
import { describe, expect, it } from 'vitest';
import { loadFineTuneAddon, type NativeFineTuneConfig, type NativeTrainBatch } from '../src/native/finetune-types.js';

const H = 16, I = 32, V = 50, C = 3, LAYERS = 2;
const encoder = {
  vocabSize: V, hiddenSize: H, embeddingSize: H, numLayers: LAYERS, numHeads: 2, intermediateSize: I, maxPositions: 40,
  typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0, positionStyle: 'absolute' as const, hasPooler: true,
};

function rand(n: number, seed: number, scale = 0.2): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s >>> 8) / (1 << 24) - 0.5) * 2 * scale;
  });
}

function weights(head: 'linear' | 'bert' | 'roberta'): Record<string, Float32Array> {
  const w: Record<string, Float32Array> = {};
  let seed = 1;
  const lin = (name: string, out: number, inp: number) => {
    w[`${name}.weight`] = rand(out * inp, seed++);
    w[`${name}.bias`] = rand(out, seed++, 0.02);
  };
  const ln = (name: string, n: number) => {
    w[`${name}.weight`] = Float32Array.from({ length: n }, (_, i) => 1 + 0.01 * i);
    w[`${name}.bias`] = rand(n, seed++, 0.02);
  };
  w['embeddings.word_embeddings.weight'] = rand(V * H, seed++);
  w['embeddings.position_embeddings.weight'] = rand(40 * H, seed++);
  w['embeddings.token_type_embeddings.weight'] = rand(2 * H, seed++);
  ln('embeddings.LayerNorm', H);
  for (let l = 0; l < LAYERS; l++) {
    const p = `encoder.layer.${l}`;
    for (const n of ['query', 'key', 'value']) lin(`${p}.attention.self.${n}`, H, H);
    lin(`${p}.attention.output.dense`, H, H);
    ln(`${p}.attention.output.LayerNorm`, H);
    lin(`${p}.intermediate.dense`, I, H);
    lin(`${p}.output.dense`, H, I);
    ln(`${p}.output.LayerNorm`, H);
  }
  lin('pooler.dense', H, H);
  if (head === 'linear') lin('head', C, H);
  if (head === 'bert') lin('classifier', C, H);
  if (head === 'roberta') {
    lin('classifier.dense', H, H);
    lin('classifier.out_proj', C, H);
  }
  return w;
}

const config: NativeFineTuneConfig = { encoder, head: 'linear', numOutputs: C, loss: 'cross-entropy' };

function batch(B = 4, L = 6): NativeTrainBatch {
  const ids = new Int32Array(B * L), mask = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    const len = L - (b % 3);
    for (let t = 0; t < len; t++) {
      ids[b * L + t] = 1 + ((b * 7 + t * 3) % (V - 1));
      mask[b * L + t] = 1;
    }
  }
  return { inputIds: ids, attentionMask: mask, batch: B, seqLen: L, labels: Int32Array.from({ length: B }, (_, i) => i % C) };
}

describe('FineTuner (native boundary)', () => {
  const { FineTuner } = loadFineTuneAddon();

  it('construction errors name the problem', () => {
    const w = weights('linear');
    delete w['encoder.layer.1.output.dense.bias'];
    expect(() => new FineTuner(config, w)).toThrow(/missing weight 'encoder\.layer\.1\.output\.dense\.bias'/);
    const w2 = weights('linear');
    w2['head.weight'] = new Float32Array(5);
    expect(() => new FineTuner(config, w2)).toThrow(/head\.weight.*5 elements, expected 48/);
    expect(() => new FineTuner({ ...config, loss: 'mse' }, weights('linear'))).toThrow(/MSE loss needs numOutputs 1/);
    expect(() => new FineTuner({ ...config, head: 'none' }, weights('linear'))).toThrow(/MNRL/);
    expect(() => new FineTuner({ ...config, classWeights: new Float32Array(2) }, weights('linear'))).toThrow(/classWeights has 2/);
    expect(() => new FineTuner({ ...config, head: 'bert', encoder: { ...encoder, hasPooler: false } }, weights('bert')))
      .toThrow(/hasPooler/);
    expect(() => new FineTuner({ ...config, loss: 'hinge' as never }, weights('linear'))).toThrow(/config\.loss/);
  });

  it('bad batches reject before touching the gradients; later calls still work', async () => {
    const ft = new FineTuner(config, weights('linear'), { threads: 1 });
    try {
      const good = batch();
      await expect(ft.accumulate({ ...good, labels: Int32Array.from([0, 1, 2, 3]) })).rejects.toThrow(/classLabels\[3\] = 3 is out of range/);
      await expect(ft.accumulate({ ...good, inputIds: good.inputIds.map((v, i) => (i === 5 ? V : v)) })).rejects.toThrow(/inputIds\[5\]/);
      await expect(ft.accumulate({ ...good, labels: undefined })).rejects.toThrow(/classLabels are required/);
      await expect(ft.accumulate({ ...good, seqLen: 5 })).rejects.toThrow(/length 24, expected batch \* seqLen = 20/);
      const emptyRow = good.attentionMask.slice();
      emptyRow.fill(0, 6, 12);
      await expect(ft.accumulate({ ...good, attentionMask: emptyRow })).rejects.toThrow(/sequence 1 has no unmasked token/);
      await expect(ft.applyStep(-1)).rejects.toThrow(/lr must be/);
      expect(await ft.gradNorm()).toBe(0);
      const r = await ft.accumulate(good);
      expect(r.loss).toBeGreaterThan(0);
      expect(await ft.gradNorm()).toBeGreaterThan(0);
    } finally {
      ft.dispose();
    }
  });

  it('calls run in order; dispose with calls in flight settles them; later calls reject', async () => {
    const ft = new FineTuner(config, weights('linear'), { threads: 2 });
    const b = batch();
    const order: string[] = [];
    const p1 = ft.accumulate(b).then(() => order.push('acc1'));
    const p2 = ft.applyStep(1e-3).then((s) => order.push(`step${s.step}`));
    const p3 = ft.step(b, 1e-3).then((s) => order.push(`step${s.step}`));
    ft.dispose();
    await Promise.all([p1, p2, p3]);
    expect(order).toEqual(['acc1', 'step1', 'step2']);
    await expect(ft.accumulate(b)).rejects.toThrow(/disposed/);
    await expect(ft.getWeights()).rejects.toThrow(/disposed/);
    ft.dispose();  // idempotent
  });

  it('training reduces the loss on a fixed batch, for each head; results do not depend on threads', async () => {
    for (const head of ['linear', 'bert', 'roberta'] as const) {
      const losses: number[][] = [];
      for (const threads of [1, 2]) {
        const ft = new FineTuner({ ...config, head, optimizer: { weightDecay: 0.01, maxGradNorm: 1 } }, weights(head), { threads });
        const seen: number[] = [];
        for (let i = 0; i < 15; i++) seen.push((await ft.step(batch(), 3e-3)).loss);
        losses.push(seen);
        const trainable = ft.params.filter((p) => p.trainable).map((p) => p.name);
        expect(trainable.includes('pooler.dense.weight')).toBe(head === 'bert');
        ft.dispose();
      }
      expect(losses[0][14], `${head}: ${losses[0].join(', ')}`).toBeLessThan(0.5 * losses[0][0]);
      expect(losses[1]).toEqual(losses[0]);
    }
  });

  it('predict matches the training forward; getWeights round-trips into a new FineTuner', async () => {
    const ft = new FineTuner(config, weights('linear'), { threads: 2 });
    try {
      const b = batch();
      for (let i = 0; i < 3; i++) await ft.step(b, 1e-3);
      const acc = await ft.accumulate(b);
      const pred = await ft.predict({ ...b, pooled: true });
      expect(Array.from(pred.logits!)).toEqual(Array.from(acc.outputs));
      expect(pred.pooled!.length).toBe(b.batch * H);
      const ft2 = new FineTuner(config, await ft.getWeights(), { threads: 1 });
      expect(Array.from((await ft2.predict(b)).logits!)).toEqual(Array.from(pred.logits!));
      ft2.dispose();
      expect(ft.activationBytes(32, 128)).toBeGreaterThan(ft.activationBytes(16, 128));
      expect(ft.trainableParameters).toBeGreaterThan(0);
    } finally {
      ft.dispose();
    }
  });
});

describe('FineTuner dropout', () => {
  const { FineTuner } = loadFineTuneAddon();
  const dropout = { hidden: 0.2, attention: 0.25, classifier: 0.3, seed: 7 };

  it('gradients are exact for the sampled masks (float32 central differences with the same masks)', async () => {
    for (const head of ['roberta', 'bert'] as const) {
      const cfg: NativeFineTuneConfig = { ...config, head, dropout };
      const w = weights(head);
      const b = batch();
      const ft = new FineTuner(cfg, w, { threads: 1 });
      const base = await ft.accumulate(b);
      const g = await ft.getGradients();
      // Fresh masks on the next call, none in predict.
      expect((await ft.accumulate(b)).loss).not.toBe(base.loss);
      const noDrop = new FineTuner({ ...cfg, dropout: undefined }, w, { threads: 1 });
      expect((await noDrop.accumulate(b)).loss).not.toBe(base.loss);
      expect(Array.from((await ft.predict(b)).logits!)).toEqual(Array.from((await noDrop.predict(b)).logits!));
      noDrop.dispose();
      ft.dispose();
      const names = ['embeddings.word_embeddings.weight', 'embeddings.LayerNorm.weight', 'encoder.layer.0.attention.self.query.weight',
        'encoder.layer.0.attention.self.value.weight', 'encoder.layer.1.intermediate.dense.weight', 'encoder.layer.1.output.dense.bias',
        head === 'bert' ? 'pooler.dense.weight' : 'classifier.dense.weight'];
      for (const name of names) {
        const grad = g[name];
        let at = 0;
        for (let i = 1; i < grad.length; i++) if (Math.abs(grad[i]) > Math.abs(grad[at])) at = i;
        const h = 2e-3;
        const lossAt = async (delta: number) => {
          const w2 = { ...w, [name]: Float32Array.from(w[name]) };
          w2[name][at] += delta;
          const f = new FineTuner(cfg, w2, { threads: 1 });
          const l = (await f.accumulate(b)).loss;
          f.dispose();
          return l;
        };
        const fd = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
        expect(Math.abs(fd - grad[at]), `${head} ${name}[${at}]: backward ${grad[at]} vs FD ${fd}`)
          .toBeLessThanOrEqual(1e-3 * Math.abs(grad[at]) + 5e-5);
      }
    }
  });

  it('rejects probabilities outside [0, 1)', () => {
    expect(() => new FineTuner({ ...config, dropout: { hidden: 1 } }, weights('linear'))).toThrow(/dropout\.hidden must be in \[0, 1\)/);
    expect(() => new FineTuner({ ...config, dropout: { attention: -0.1 } }, weights('linear'))).toThrow(/dropout\.attention/);
  });
});
