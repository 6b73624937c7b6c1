/**
 * --backbone NAME through the CLI: the registry listing, resolution from a Hugging Face cache (HF_HUB_CACHE),
 * ready-made classifiers scored by predict without a run folder, the offline error, and the LUKE -> RoBERTa
 * mapping (word-only LUKE is a RoBERTa forward). Nothing here touches the network (HF_HUB_OFFLINE=1).
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openTable } from '../src/data/table.js';
import { loadEncoder } from '../src/encoder.js';
import { repoFolder } from '../src/hub/cache.js';
import { BACKBONES } from '../src/hub/registry.js';
import { resolveModel } from '../src/hub/resolve.js';
import { generateModelFolder } from '../src/model/generate.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../src/model/safetensors.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-backbones-');
const BERT_TOK = () => sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2');
const TINY = { preset: 'tiny' as const, hidden: 32, layers: 1, heads: 2, intermediate: 64 };
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

/** Puts a folder into a hub cache as repo@main, the way huggingface_hub lays it out (files copied, not linked). */
function placeInCache(cache: string, repo: string, folder: string): string {
  const snap = join(repoFolder(cache, repo), 'snapshots', COMMIT);
  cpSync(folder, snap, { recursive: true });
  mkdirSync(join(repoFolder(cache, repo), 'refs'), { recursive: true });
  writeFileSync(join(repoFolder(cache, repo), 'refs', 'main'), COMMIT);
  return snap;
}

/** Python's round(max(0, min(score, 5))): half to even. */
function pyIntScore(s: number): number {
  const x = Math.min(5, Math.max(0, s));
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

describe('--backbone', () => {
  const cache = tmp.make();
  const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
  const classifier = join(tmp.make(), 'fineweb-like');
  generateModelFolder(classifier, { ...TINY, modelType: 'bert', tokenizerDir: BERT_TOK(), head: 'seqcls', problemType: 'regression', seed: 21 });
  const fineweb = placeInCache(cache, 'HuggingFaceTB/fineweb-edu-classifier', classifier);
  const labseSrc = join(tmp.make(), 'labse-like');
  generateModelFolder(labseSrc, { ...TINY, tokenizerDir: BERT_TOK(), sentenceTransformers: true, stPooling: ['cls'], stDense: { outFeatures: 32 }, normalize: true, seed: 22 });
  const labse = placeInCache(cache, 'sentence-transformers/LaBSE', labseSrc);
  const texts = ['The mitochondria is the powerhouse of the cell.', 'buy cheap watches', '', 'Photosynthesis converts light into chemical energy.'];
  const input = join(tmp.make(), 'docs.jsonl');
  writeFileSync(input, texts.map((t, i) => JSON.stringify({ id: `d${i}`, text: t })).join('\n') + '\n');

  it('`backbones --json` lists every entry with its HF id and whether the cache has it', async () => {
    const r = await runCli(['backbones', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { cache_dir: string; backbones: { name: string; repo: string; present: boolean; path: string | null; architecture: string }[] };
    expect(j.cache_dir).toBe(cache);
    expect(j.backbones.map((b) => [b.name, b.repo])).toEqual(BACKBONES.map((b) => [b.name, b.repo]));
    const by = Object.fromEntries(j.backbones.map((b) => [b.name, b]));
    expect(by['fineweb-edu-classifier']).toMatchObject({ present: true, path: fineweb, architecture: 'BertForSequenceClassification' });
    expect(by.labse).toMatchObject({ present: true, path: labse });
    expect(by['ko-sroberta']).toMatchObject({ present: false, path: null, repo: 'jhgan/ko-sroberta-multitask' });
    const text = await runCli(['backbones'], env);
    expect(text.stdout).toMatch(/labse\s+sentence-transformers\/LaBSE\s+BertModel\s+cls -> Dense\(768, 768, tanh\) -> Normalize/);
    expect(text.stdout).toMatch(/glucose-ja: LUKE/);
  });

  it('predict --backbone fineweb-edu-classifier scores a table with no run folder: score = logits[0]', async () => {
    const out = join(tmp.make(), 'scored.jsonl');
    const r = await runCli(['predict', '--backbone', 'fineweb-edu-classifier', '--input', input, '--output', out, '--quiet'], env);
    expect(r.code, r.stderr).toBe(0);
    const t = await openTable(out);
    const all = await t.readAll();
    await t.close();
    expect(all.columns.id).toEqual(texts.map((_, i) => `d${i}`));
    const enc = await loadEncoder(fineweb);
    try {
      for (let i = 0; i < texts.length; i++) {
        const [e] = await enc.tokenizer!.encode([texts[i]]);
        const f = await enc.forward({ input_ids: [Array.from(e.ids)], token_type_ids: [Array.from(e.typeIds)] });
        const score = all.columns.score[i] as number;
        expect(Math.abs(score - f.logits![0])).toBeLessThan(2e-5);
        expect(all.columns.int_score[i]).toBe(pyIntScore(score));
      }
    } finally {
      enc.dispose();
    }
  });

  it('embed / forward take --backbone from the cache; a missing one offline names the files to place', async () => {
    const out = join(tmp.make(), 'e.jsonl');
    const r = await runCli(['embed', '--backbone', 'labse', '--input', input, '--output', out, '--quiet'], env);
    expect(r.code, r.stderr).toBe(0);
    const t = await openTable(out);
    const rows = (await t.readAll()).columns.embedding as number[][];
    await t.close();
    expect(rows[0].length).toBe(32);
    expect(Math.hypot(...rows[0])).toBeCloseTo(1, 5); // the card's Normalize module ran

    const inputs = join(tmp.make(), 'ids.json');
    writeFileSync(inputs, JSON.stringify({ input_ids: [[101, 7592, 102]] }));
    const fwd = await runCli(['forward', '--backbone', 'labse', '--inputs', inputs], env);
    expect(fwd.code, fwd.stderr).toBe(0);
    expect(JSON.parse(fwd.stdout).shapes.cls).toEqual([1, 32]);

    const miss = await runCli(['embed', '--backbone', 'ko-sroberta', '--input', input, '--output', out, '--quiet'], env);
    expect(miss.code).toBe(2);
    expect(miss.stderr).toContain('jhgan/ko-sroberta-multitask is not in the Hugging Face cache');
    expect(miss.stderr).toContain(join(repoFolder(cache, 'jhgan/ko-sroberta-multitask'), 'snapshots', 'local'));
    expect(miss.stderr).toContain('  1_Pooling/config.json');
    const none = await runCli(['embed', '--input', input, '--output', out], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/pass --model-dir DIR or --backbone NAME/);
    const unknown = await runCli(['embed', '--backbone', 'nope', '--input', input, '--output', out], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--backbone nope: unknown name; known: ko-sroberta, labse/);
  });

  it('predict without --run refuses a folder that has no classification head', async () => {
    const r = await runCli(['predict', '--backbone', 'labse', '--input', input, '--output', join(tmp.make(), 'x.jsonl')], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no classification head; train one .* --run RUN_DIR/);
  });
});

describe('LUKE checkpoints (glucose-ja) are read as RoBERTa for word-only input', () => {
  it('a LukeModel folder (extra entity weights) gives exactly the RoBERTa forward', async () => {
    const roberta = join(tmp.make(), 'roberta');
    generateModelFolder(roberta, { ...TINY, modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 31 });
    const luke = join(tmp.make(), 'luke');
    cpSync(roberta, luke, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(roberta, 'config.json'), 'utf8'));
    writeFileSync(join(luke, 'config.json'), JSON.stringify({
      ...cfg, model_type: 'luke', architectures: ['LukeModel'], entity_vocab_size: 4, entity_emb_size: 16, use_entity_aware_attention: true,
    }));
    // What a LukeModel state dict adds: entity embeddings and the entity-aware query layers.
    const t = new Map<string, TensorToWrite>();
    for (const [k, v] of await readSafetensors(join(roberta, 'model.safetensors'))) t.set(k, { dtype: 'F32', shape: v.shape, data: v.data });
    t.set('entity_embeddings.entity_embeddings.weight', { dtype: 'F32', shape: [4, 16], data: new Float32Array(64).fill(0.5) });
    t.set('entity_embeddings.entity_embedding_dense.weight', { dtype: 'F32', shape: [32, 16], data: new Float32Array(512).fill(0.1) });
    for (const q of ['w2e_query', 'e2w_query', 'e2e_query']) {
      t.set(`encoder.layer.0.attention.self.${q}.weight`, { dtype: 'F32', shape: [32, 32], data: new Float32Array(1024).fill(9) });
      t.set(`encoder.layer.0.attention.self.${q}.bias`, { dtype: 'F32', shape: [32], data: new Float32Array(32).fill(9) });
    }
    writeSafetensors(join(luke, 'model.safetensors'), t);

    process.env.EDU_TRAIN_VIEWS = tmp.make();
    const r = await resolveModel({ modelDir: luke });
    expect(r.dir).not.toBe(luke);
    expect(JSON.parse(readFileSync(join(r.dir, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'roberta', architectures: ['RobertaModel'] });
    const [a, b] = [await loadEncoder(roberta), await loadEncoder(r.dir)];
    try {
      const ids = { input_ids: [[0, 1234, 2345, 3456, 2], [0, 999, 2, 1, 1]], attention_mask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]] };
      const [fa, fb] = [await a.forward(ids), await b.forward(ids)];
      expect(Array.from(fb.last_hidden_state)).toEqual(Array.from(fa.last_hidden_state));
    } finally {
      a.dispose();
      b.dispose();
    }
    writeFileSync(join(luke, 'config.json'), JSON.stringify({ ...cfg, model_type: 'luke', architectures: ['LukeForEntityClassification'] }));
    await expect(resolveModel({ modelDir: luke })).rejects.toThrow(/LukeForEntityClassification is a luke class whose head edu-train cannot map/);
  });
});
