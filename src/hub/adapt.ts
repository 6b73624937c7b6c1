/**
 * Model types edu-train reads as another, where the forward pass is provably the same.
 *
 * LUKE -> RoBERTa: edu-train never passes entity inputs, and with word inputs only LukeModel is a RoBERTa
 * forward (transformers' modeling_luke.py: LukeEmbeddings builds RoBERTa position ids from the padding
 * index; LukeSelfAttention with entity_hidden_states=None computes query/key/value of the words only, so
 * w2e/e2w/e2e_query and the entity embeddings are unused; LukeSelfOutput/Intermediate/Output/Pooler are
 * BERT's). The checkpoint's encoder tensor names are RoBERTa's, so only config.json needs to change.
 *
 * The source folder (often a read-only cache snapshot) is left alone: a view folder gets a rewritten
 * config.json and symlinks to everything else.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../util/errors.js';

/** Where view folders live: $EDU_TRAIN_VIEWS, else ~/.cache/edu-train/views. */
export function viewsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.EDU_TRAIN_VIEWS || join(homedir(), '.cache', 'edu-train', 'views');
}

const MAPPABLE: Record<string, { to: string; architectures: Record<string, string> }> = {
  luke: { to: 'roberta', architectures: { LukeModel: 'RobertaModel', LukeForMaskedLM: 'RobertaModel' } },
};

/** The folder to load: `dir` itself, or a view of it when its model_type is one edu-train maps. */
export function adaptModelFolder(dir: string): string {
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) return dir;
  const text = readFileSync(configFile, 'utf8');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return dir; // readModelSpec reports the broken JSON with its own message
  }
  const rule = MAPPABLE[String(config.model_type)];
  if (!rule) return dir;
  const arch = Array.isArray(config.architectures) ? String(config.architectures[0]) : undefined;
  const mappedArch = arch === undefined ? 'RobertaModel' : rule.architectures[arch];
  if (!mappedArch) {
    throw new UsageError(`${configFile}: ${arch} is a ${config.model_type} class whose head edu-train cannot map; ` +
      `only the bare encoder (${Object.keys(rule.architectures).join(', ')}) is read, as ${rule.to} (word inputs only)`);
  }
  const src = resolve(dir);
  const id = createHash('sha256').update(src).update('\0').update(text).digest('hex').slice(0, 16);
  const view = join(viewsDir(), `${config.model_type}-as-${rule.to}-${id}`);
  if (existsSync(join(view, 'config.json'))) return view;
  const tmp = `${view}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const name of readdirSync(src)) {
    if (name !== 'config.json') symlinkSync(join(src, name), join(tmp, name));
  }
  const mapped = { ...config, model_type: rule.to, architectures: [mappedArch], edu_train_mapped_from: config.model_type };
  writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(mapped, null, 2)}\n`);
  try {
    renameSync(tmp, view);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process made the same view first
  }
  return view;
}
