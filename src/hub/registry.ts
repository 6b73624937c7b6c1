/**
 * Known backbones: the short names `--backbone` accepts, the Hugging Face repos behind them, and what
 * their model cards prescribe. The pooling text is documentation; the folder's own modules.json is what
 * `embed` actually runs. Any other "org/name" is accepted as a raw repo id.
 */
import { UsageError } from '../util/errors.js';

export interface BackboneEntry {
  name: string;
  repo: string;
  /** The transformers class of the checkpoint. */
  architecture: string;
  /** config.json model_type. */
  modelType: string;
  /** Pooling the card prescribes (sentence-transformers modules), or null when none is. */
  pooling: string | null;
  /** 'encoder': embed / train heads on it; 'classifier': a ready-made head that predict runs directly. */
  kind: 'encoder' | 'classifier';
  task?: 'regression';
  /** Files besides config.json / tokenizer files / weights that the folder is expected to have. */
  extraFiles?: string[];
  /** Read as another model_type (see src/hub/adapt.ts); why it is exact is in `note`. */
  mapModelType?: { from: string; to: 'roberta' };
  note?: string;
}

export const BACKBONES: readonly BackboneEntry[] = [
  {
    name: 'ko-sroberta', repo: 'jhgan/ko-sroberta-multitask', architecture: 'RobertaModel', modelType: 'roberta',
    pooling: 'mean', kind: 'encoder', extraFiles: ['modules.json', '1_Pooling/config.json', 'sentence_bert_config.json'],
  },
  {
    name: 'labse', repo: 'sentence-transformers/LaBSE', architecture: 'BertModel', modelType: 'bert',
    pooling: 'cls -> Dense(768, 768, tanh) -> Normalize', kind: 'encoder',
    extraFiles: ['modules.json', '1_Pooling/config.json', '2_Dense/config.json', '2_Dense/model.safetensors', 'sentence_bert_config.json'],
  },
  {
    name: 'arctic-embed-m', repo: 'Snowflake/snowflake-arctic-embed-m', architecture: 'BertModel', modelType: 'bert',
    pooling: 'cls -> Normalize', kind: 'encoder', extraFiles: ['modules.json', '1_Pooling/config.json', 'sentence_bert_config.json'],
  },
  { name: 'klue-bert', repo: 'klue/bert-base', architecture: 'BertForMaskedLM', modelType: 'bert', pooling: null, kind: 'encoder' },
  { name: 'klue-roberta', repo: 'klue/roberta-base', architecture: 'RobertaForMaskedLM', modelType: 'roberta', pooling: null, kind: 'encoder' },
  {
    name: 'glucose-ja', repo: 'pkshatech/GLuCoSE-base-ja', architecture: 'LukeModel', modelType: 'luke',
    pooling: 'mean', kind: 'encoder', extraFiles: ['modules.json', '1_Pooling/config.json', 'sentence_bert_config.json'],
    mapModelType: { from: 'luke', to: 'roberta' },
    note:
      'LUKE (studio-ousia/luke-japanese-base-lite). With word inputs only, LukeModel is exactly a RoBERTa forward: ' +
      'RoBERTa position ids (pad+1 offset), and LukeSelfAttention uses only query/key/value when no entity hidden states ' +
      'are given (w2e/e2w/e2e_query and the entity embeddings are never touched), so edu-train reads it as RoBERTa and ' +
      'ignores the entity weights. But its tokenizer is MLukeTokenizer (sentencepiece.bpe.model + entity_vocab.json), ' +
      'a slow tokenizer with no tokenizer.json, and edu-train tokenizes only through tokenizer.json: place a tokenizer.json ' +
      'equivalent to its word tokenizer (XLM-R-style sentencepiece Unigram with the fairseq id offset) in the folder to use it.',
  },
  {
    name: 'fineweb-edu-classifier', repo: 'HuggingFaceTB/fineweb-edu-classifier', architecture: 'BertForSequenceClassification',
    modelType: 'bert', pooling: 'cls -> pooler -> classifier (regression)', kind: 'classifier', task: 'regression',
    note: 'regression head on Snowflake/snowflake-arctic-embed-m; score = logits[0], int_score = round(clip(score, 0, 5))',
  },
  {
    name: 'ko-edu-labse', repo: 'devngho/ko_edu_classifier_v2_LaBSE', architecture: 'BertForSequenceClassification',
    modelType: 'bert', pooling: 'cls -> pooler -> classifier (regression)', kind: 'classifier', task: 'regression',
    note: 'Korean FineWeb-Edu-style regression head on sentence-transformers/LaBSE',
  },
];

/** A registry name, or an "org/name" repo id. */
export function lookupBackbone(name: string): BackboneEntry {
  const known = BACKBONES.find((b) => b.name === name || b.repo === name);
  if (known) return known;
  if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(name)) {
    return { name, repo: name, architecture: '?', modelType: '?', pooling: null, kind: 'encoder' };
  }
  throw new UsageError(`--backbone ${name}: unknown name; known: ${BACKBONES.map((b) => b.name).join(', ')} (or a Hugging Face repo id "org/name")`);
}
