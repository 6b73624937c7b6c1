import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectWeightPrefix, findWeightFiles, parseModelConfig, readModelSpec } from '../src/model/config.js';
import { ModelFormatError } from '../src/model/errors.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-train-cfg-');

const bertConfig = (): Record<string, unknown> =>
  JSON.parse(readFileSync(sharedPath('golden', 'bert-tiny', 'config.json'), 'utf8')) as Record<string, unknown>;

/** parseModelConfig on the bert-tiny config with `patch` applied (undefined deletes a key). */
function parseWith(patch: Record<string, unknown>): ReturnType<typeof parseModelConfig> {
  const c = bertConfig();
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  return parseModelConfig(c, '/models/x/config.json');
}

describe('golden configs', () => {
  it('bert-tiny', () => {
    const spec = readModelSpec(sharedPath('golden', 'bert-tiny'));
    expect(spec.architecture).toBe('BertModel');
    expect(spec.config).toEqual({
      modelType: 'bert', vocabSize: 1000, hiddenSize: 64, embeddingSize: 64, numLayers: 2, numHeads: 4,
      intermediateSize: 256, maxPositions: 128, typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0,
      positionStyle: 'absolute', positionOffset: 0,
    });
    expect(spec.head).toEqual({ kind: 'none', numLabels: 0 });
    expect(spec.hasPooler).toBe(true);
    expect(spec.weightPrefix).toBe('');
    expect(spec.weightFormat).toBe('safetensors');
    expect(spec.weightFiles).toEqual([join(sharedPath('golden', 'bert-tiny'), 'model.safetensors')]);
    expect(spec.rawConfig.model_type).toBe('bert');
  });

  it('bert-tiny-large-weights', () => {
    const spec = readModelSpec(sharedPath('golden', 'bert-tiny-large-weights'));
    expect(spec.config.hiddenSize).toBe(64);
    expect(spec.head.kind).toBe('none');
    expect(spec.hasPooler).toBe(true);
  });

  it('roberta-tiny', () => {
    const spec = readModelSpec(sharedPath('golden', 'roberta-tiny'));
    expect(spec.architecture).toBe('RobertaModel');
    expect(spec.config).toMatchObject({
      modelType: 'roberta', maxPositions: 130, typeVocabSize: 1, layerNormEps: 1e-5, padTokenId: 1,
      positionStyle: 'roberta', positionOffset: 2,
    });
    expect(spec.weightPrefix).toBe('');
    expect(spec.hasPooler).toBe(true);
  });

  it('bert-tiny-seqcls-regression', () => {
    const spec = readModelSpec(sharedPath('golden', 'bert-tiny-seqcls-regression'));
    expect(spec.architecture).toBe('BertForSequenceClassification');
    expect(spec.head).toEqual({ kind: 'bert', numLabels: 1, problemType: 'regression', id2label: { 0: 'LABEL_0' } });
    expect(spec.weightPrefix).toBe('bert.');
    expect(spec.hasPooler).toBe(true);
  });
});

describe('real configs in shared/models', () => {
  it('all-MiniLM-L6-v2 config parses; the folder has no weights, which readModelSpec reports', () => {
    const dir = sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2');
    const parsed = parseModelConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
    expect(parsed.architecture).toBe('BertModel');
    expect(parsed.config).toMatchObject({
      modelType: 'bert', vocabSize: 30522, hiddenSize: 384, numLayers: 6, numHeads: 12, intermediateSize: 1536,
      maxPositions: 512, typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0, positionOffset: 0,
    });
    expect(() => readModelSpec(dir)).toThrow(ModelFormatError);
    expect(() => readModelSpec(dir)).toThrow(/no weights found: looked for model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin, pytorch_model\.bin\.index\.json/);
  });

  it('the klue tokenizer folder has no config.json', () => {
    const dir = sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer');
    expect(() => readModelSpec(dir)).toThrow(/no config\.json: not a Hugging Face model folder/);
  });

  it('KL-RoBERTa\'s documented config (long-position RoBERTa) parses', () => {
    const parsed = parseModelConfig({
      architectures: ['RobertaForMaskedLM'], model_type: 'roberta', hidden_size: 768, num_hidden_layers: 12,
      num_attention_heads: 12, intermediate_size: 3072, vocab_size: 32000, max_position_embeddings: 4096,
      type_vocab_size: 1, pad_token_id: 1, layer_norm_eps: 1e-5, hidden_act: 'gelu', tokenizer_class: 'BertTokenizer',
    }, 'config.json');
    expect(parsed.head.kind).toBe('none');
    expect(parsed.config).toMatchObject({ maxPositions: 4096, positionOffset: 2, positionStyle: 'roberta' });
  });
});

describe('config.json validation', () => {
  it('unknown model_type names it and the supported ones', () => {
    expect(() => parseWith({ model_type: 'deberta-v2' })).toThrow(
      '/models/x/config.json: "model_type" is "deberta-v2", which edu-train does not support (supported: bert, roberta, xlm-roberta, electra)');
    expect(() => parseWith({ model_type: 'camembert' })).toThrow(/camembert/);
    expect(() => parseWith({ model_type: undefined })).toThrow(/"model_type" is missing/);
  });

  it('hidden_act other than exact gelu is rejected', () => {
    for (const act of ['gelu_new', 'gelu_pytorch_tanh', 'relu', 'gelu_fast']) {
      expect(() => parseWith({ hidden_act: act })).toThrow(new RegExp(`"hidden_act" is "${act}"; edu-train implements only "gelu" \\(exact erf GELU\\)`));
    }
  });

  it('missing or invalid sizes name the file and key', () => {
    expect(() => parseWith({ hidden_size: undefined })).toThrow('/models/x/config.json: "hidden_size" is missing');
    expect(() => parseWith({ vocab_size: -5 })).toThrow('"vocab_size" must be a positive integer, got -5');
    expect(() => parseWith({ num_hidden_layers: 2.5 })).toThrow('"num_hidden_layers" must be a positive integer, got 2.5');
    expect(() => parseWith({ intermediate_size: '256' })).toThrow('"intermediate_size" must be a positive integer, got "256"');
    expect(() => parseWith({ num_attention_heads: 5 })).toThrow('"hidden_size" (64) is not divisible by num_attention_heads (5)');
    expect(() => parseWith({ layer_norm_eps: 0 })).toThrow(/"layer_norm_eps" must be a positive number/);
    expect(() => parseWith({ pad_token_id: 1000 })).toThrow(/"pad_token_id" must be an integer in \[0, vocab_size = 1000\)/);
    expect(() => parseWith({ position_embedding_type: 'relative_key' })).toThrow(/"position_embedding_type" is "relative_key"; only "absolute"/);
    expect(() => parseModelConfig([], 'c.json')).toThrow(/not a JSON object/);
  });

  it('applies the transformers defaults', () => {
    const b = parseWith({ type_vocab_size: undefined, layer_norm_eps: undefined, pad_token_id: undefined, hidden_act: undefined, position_embedding_type: undefined });
    expect(b.config).toMatchObject({ typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0 });
    const r = parseWith({ model_type: 'xlm-roberta', pad_token_id: undefined, architectures: undefined });
    expect(r.architecture).toBe('XLMRobertaModel');
    expect(r.config).toMatchObject({ padTokenId: 1, positionStyle: 'roberta', positionOffset: 2 });
    const e = parseWith({ model_type: 'electra', embedding_size: 32, architectures: ['ElectraModel'] });
    expect(e.config).toMatchObject({ embeddingSize: 32, hiddenSize: 64, positionStyle: 'absolute', positionOffset: 0 });
    // transformers' ElectraConfig default.
    expect(parseWith({ model_type: 'electra', embedding_size: undefined }).config.embeddingSize).toBe(128);
  });

  it('reads the head from architectures[0]', () => {
    expect(parseWith({ architectures: ['RobertaForSequenceClassification'], model_type: 'roberta', num_labels: 3 }).head)
      .toEqual({ kind: 'roberta', numLabels: 3 });
    expect(parseWith({ architectures: ['XLMRobertaForSequenceClassification'], model_type: 'xlm-roberta', id2label: { 0: 'a', 1: 'b' } }).head)
      .toEqual({ kind: 'roberta', numLabels: 2, id2label: { 0: 'a', 1: 'b' } });
    expect(parseWith({ architectures: ['ElectraForSequenceClassification'], model_type: 'electra', problem_type: 'multi_label_classification' }).head)
      .toEqual({ kind: 'electra', numLabels: 2, problemType: 'multi_label_classification' });
    expect(parseWith({ architectures: ['BertForMaskedLM'] }).head.kind).toBe('none');
    expect(() => parseWith({ architectures: ['BertForSequenceClassification'], problem_type: 'ranking' })).toThrow(/"problem_type" is "ranking"/);
    expect(() => parseWith({ architectures: ['BertForSequenceClassification'], id2label: { 0: 'a', 2: 'c' } })).toThrow(/"id2label" must have the ids 0..1; 1 is missing/);
    expect(() => parseWith({ architectures: ['BertForSequenceClassification'], id2label: { x: 'a' } })).toThrow(/"id2label" has a key "x"/);
  });
});

describe('weight files and naming', () => {
  it('detects the encoder prefix from the weight names', () => {
    expect(detectWeightPrefix(['embeddings.word_embeddings.weight'], 'bert')).toBe('');
    expect(detectWeightPrefix(['bert.embeddings.word_embeddings.weight', 'cls.predictions.bias'], 'bert')).toBe('bert.');
    expect(detectWeightPrefix(['roberta.embeddings.word_embeddings.weight'], 'xlm-roberta')).toBe('roberta.');
    expect(detectWeightPrefix(['electra.embeddings.word_embeddings.weight', 'generator.embeddings.word_embeddings.weight'], 'electra')).toBe('electra.');
    expect(detectWeightPrefix(['model.embeddings.word_embeddings.weight'], 'bert')).toBe('model.');
    expect(detectWeightPrefix(['pooler.dense.weight'], 'bert')).toBeNull();
    expect(detectWeightPrefix(['bert.encoder.layer.0.attention.self.query.weight'], 'bert')).toBe('bert.');
  });

  it('a checkpoint without word embeddings is an Error', () => {
    const dir = tmp.make();
    copyFileSync(sharedPath('golden', 'bert-tiny', 'config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'x.weight': 'model.safetensors-1' } }));
    writeFileSync(join(dir, 'model.safetensors-1'), '');
    expect(() => readModelSpec(dir)).toThrow(/no encoder weights/);
  });

  it('sharded indexes: shards must be plain files in the folder, and exist', () => {
    const dir = tmp.make();
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../../etc/passwd' } }));
    expect(() => findWeightFiles(dir)).toThrow(/weight_map\["a"\] = "..\/..\/etc\/passwd" is not a file name in the model folder/);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors' } }));
    expect(() => findWeightFiles(dir)).toThrow(/lists shard\(s\) that do not exist: model-00001-of-00002\.safetensors/);
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
    expect(() => findWeightFiles(dir)).toThrow(/"weight_map" is missing/);
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{oops');
    expect(() => findWeightFiles(dir)).toThrow(/is not valid JSON/);
  });

  it('prefers model.safetensors over pytorch_model.bin', () => {
    const dir = tmp.make();
    writeFileSync(join(dir, 'pytorch_model.bin'), '');
    expect(findWeightFiles(dir)).toMatchObject({ format: 'pytorch', files: [join(dir, 'pytorch_model.bin')] });
    writeFileSync(join(dir, 'model.safetensors'), '');
    expect(findWeightFiles(dir)).toMatchObject({ format: 'safetensors', files: [join(dir, 'model.safetensors')] });
    mkdirSync(join(dir, 'sub'));
  });

  it('a folder that does not exist, and a config.json that is not JSON', () => {
    expect(() => readModelSpec('/nonexistent/model')).toThrow(/model folder does not exist/);
    const dir = tmp.make();
    writeFileSync(join(dir, 'config.json'), '{"model_type": ');
    expect(() => readModelSpec(dir)).toThrow(/config\.json: is not valid JSON/);
  });
});
