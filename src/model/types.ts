import type { NativeHeadKind, PositionStyle } from '../native/addon-types.js';

/** The BERT-family architectures edu-train runs. */
export type ModelType = 'bert' | 'roberta' | 'xlm-roberta' | 'electra';

/** The encoder's shape and numerics, read from a Hugging Face config.json. */
export interface EncoderConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  /** == hiddenSize except for ELECTRA models with a smaller embedding. */
  embeddingSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  positionStyle: PositionStyle;
  /** First position id used by a real token: 0 for BERT/ELECTRA, padTokenId + 1 for RoBERTa/XLM-R. */
  positionOffset: number;
}

/** The sequence-classification head a checkpoint carries, if any. */
export interface HeadSpec {
  kind: NativeHeadKind;
  numLabels: number;
  problemType?: 'regression' | 'single_label_classification' | 'multi_label_classification';
  /** id2label as in config.json, keys as numbers. */
  id2label?: Record<number, string>;
}

/** Everything edu-train needs to know about a model folder before loading its weights. */
export interface ModelSpec {
  /** Absolute path of the model folder. */
  dir: string;
  /** config.json `architectures[0]`, or a name derived from model_type. */
  architecture: string;
  config: EncoderConfig;
  head: HeadSpec;
  /** True when the weights include pooler.dense.* */
  hasPooler: boolean;
  /** The prefix of encoder weights in the checkpoint ('', 'bert.', 'roberta.', 'electra.'). */
  weightPrefix: string;
  /** Which weight file(s) were found. */
  weightFiles: string[];
  weightFormat: 'safetensors' | 'pytorch';
  /** The raw parsed config.json. */
  rawConfig: Record<string, unknown>;
}

/** Loaded weights under canonical names (see src/native/addon-types.ts), all float32. */
export interface LoadedWeights {
  tensors: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  /** sha256 over the weight files' bytes (hex), identifying the exact checkpoint. */
  sha256: string;
}
