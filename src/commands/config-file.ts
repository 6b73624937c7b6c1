/**
 * `--config FILE` for train / eval / predict / embed: option values from a JSON object, keys in camelCase,
 * kebab-case (or snake_case, as run.json writes them). The values go through each option's own parser and
 * choices, exactly as if typed, and are set before the command line is parsed, so flags override them.
 * A previous run's run.json works too: its `options` are used.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command, type Option } from 'commander';
import { UsageError, messageOf } from '../util/errors.js';

export const CONFIG_COMMANDS = ['train', 'eval', 'predict', 'embed'] as const;
export const CONFIG_HELP =
  'JSON file of option values, keys camelCase or kebab-case, e.g. {"epochs": 5, "class-weights": "balanced"}; flags given on the command line override it (default: none)';

export function addConfigOption(cmd: Command): void {
  cmd.option('--config <file>', CONFIG_HELP);
}

/** The --config value among a command's raw arguments (before `--`), if any. */
export function configPathFromArgs(args: readonly string[]): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') break;
    if (a === '--config') {
      if (i + 1 >= args.length) return undefined; // commander reports the missing argument
      found = args[++i];
    } else if (a.startsWith('--config=')) found = a.slice('--config='.length);
  }
  return found;
}

const toCamel = (key: string): string => key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
const flagOf = (o: Option): string => o.long ?? o.short ?? o.name();

/** The options a config file may set, by attribute name (--cache and --no-cache share one). */
function settable(cmd: Command): Map<string, Option[]> {
  const map = new Map<string, Option[]>();
  for (const o of cmd.options) {
    if (o.long === '--config' || o.long === '--help') continue;
    const k = o.attributeName();
    map.set(k, [...(map.get(k) ?? []), o]);
  }
  return map;
}

export function readConfigFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new UsageError(`--config ${file}: no such file`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--config ${file}: not valid JSON (${messageOf(e)}); it must be one object of option values like {"epochs": 5}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`--config ${file}: must hold one JSON object of option values like {"epochs": 5}, not ${Array.isArray(value) ? 'an array' : typeof value}`);
  }
  const v = value as Record<string, unknown>;
  // A run folder's run.json: reuse the options it was trained with.
  if (v.format === 'edu-train-run' && typeof v.options === 'object' && v.options !== null) return v.options as Record<string, unknown>;
  return v;
}

function parsedValue(file: string, key: string, options: Option[], value: unknown): unknown {
  const where = `--config ${file}: "${key}"`;
  const takesValue = options.find((o) => o.required || o.optional);
  if (typeof value === 'boolean') {
    if (options.some((o) => o.isBoolean() || o.negate)) return value;
    throw new UsageError(`${where} needs a value for ${flagOf(takesValue!)}, not ${value}`);
  }
  if (!takesValue) throw new UsageError(`${where} is a switch (${options.map(flagOf).join(' / ')}): use true or false`);
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
  else if (Array.isArray(value) && value.every((x) => typeof x === 'string' || typeof x === 'number')) text = value.join(',');
  else throw new UsageError(`${where} must be a string, number, list or true/false, got ${JSON.stringify(value)}`);
  if (takesValue.argChoices && !takesValue.argChoices.includes(text)) {
    throw new UsageError(`${where} is ${JSON.stringify(text)}; ${flagOf(takesValue)} must be one of ${takesValue.argChoices.join(', ')}`);
  }
  if (!takesValue.parseArg) return text;
  try {
    return takesValue.parseArg(text, undefined);
  } catch (e) {
    throw new UsageError(`${where}: ${e instanceof InvalidArgumentError ? e.message : messageOf(e)}`);
  }
}

/** Sets the file's values on cmd (source 'config'); returns the attribute names it set. */
export function applyConfigFile(cmd: Command, file: string): string[] {
  const config = readConfigFile(file);
  const known = settable(cmd);
  const set: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    const attr = toCamel(key);
    const options = known.get(attr);
    if (!options) {
      const valid = [...known.values()].map((os) => (os.find((o) => !o.negate) ?? os[0]).long!.replace(/^--(no-)?/, '')).sort();
      throw new UsageError(`--config ${file}: unknown option "${key}" for \`edu-train ${cmd.name()}\`; valid keys: ${valid.join(', ')}`);
    }
    if (value === null) continue; // null = unset (run.json writes unset options as null)
    cmd.setOptionValueWithSource(attr, parsedValue(file, key, options, value), 'config');
    set.push(attr);
  }
  return set;
}

/** The options a command will run with, one `--flag value  (source)` line each, for the log. */
export function effectiveConfigText(cmd: Command): string {
  const lines: string[] = [];
  for (const [attr, options] of settable(cmd)) {
    const value = cmd.getOptionValue(attr);
    if (value === undefined) continue;
    const source = cmd.getOptionValueSource(attr);
    const flag = (options.find((o) => !o.negate) ?? options[0]).long!.replace(/^--no-/, '--');
    const shown = Array.isArray(value) ? value.join(',') : String(value);
    lines.push(`  ${flag} ${shown}${source && source !== 'default' ? `  (${source === 'cli' ? 'command line' : source})` : ''}`);
  }
  return lines.join('\n');
}

/**
 * Adds --config to the commands that take one and applies it: values are set in `preSubcommand`, after
 * commander resets the subcommand and before it parses the command line (so flags win and required
 * options can come from the file). `train` then logs the effective options (they are saved in run.json).
 */
export function enableConfigFiles(program: Command): void {
  const commands = program.commands.filter((c) => (CONFIG_COMMANDS as readonly string[]).includes(c.name()));
  commands.forEach(addConfigOption);
  program.hook('preSubcommand', (self, sub) => {
    if (!commands.includes(sub)) return;
    const args = self.args.slice(1);
    if (args.includes('--help') || args.includes('-h')) return;
    const file = configPathFromArgs(args);
    if (file !== undefined) applyConfigFile(sub, file);
  });
  program.hook('preAction', (_self, action) => {
    if (action.name() !== 'train' || action.getOptionValue('quiet')) return;
    process.stderr.write(`effective options (saved in run.json):\n${effectiveConfigText(action)}\n`);
  });
}
