/**
 * Every option's help line states its default (or that it is required). Most say so where they are
 * declared; this pass fills in the rest after all commands are registered: "(required)" for mandatory
 * options, the default of --no-X switches, and the defaults below for optional values without one.
 */
import type { Command, Option } from 'commander';

/** `command --flag` -> what happens when the option is left out. */
const MISSING_DEFAULTS: Record<string, string> = {
  'forward --inputs': 'required',
  'train --folds': 'off: one train/validation run',
  'eval --run': 'none: use --predictions',
  'eval --data': 'none',
  'eval --model-dir': "the encoder recorded in the run's run.json",
  'eval --predictions': 'none: use --run',
  'eval --true-column': 'none',
  'eval --pred-column': 'none',
  'predict --keep-columns': 'none',
  'predict --model-dir': "the encoder recorded in the run's run.json",
  'demo --model-dir': 'a generated random-weight BERT',
  'demo --data': 'the bundled sample',
};

const describesDefault = (o: Option): boolean =>
  /\bdefault\b|\brequired\b/i.test(o.description) || (o.defaultValue !== undefined && (o.required || o.optional || typeof o.defaultValue === 'boolean'));

function complete(cmdName: string, o: Option): void {
  if (describesDefault(o)) return;
  const known = MISSING_DEFAULTS[`${cmdName} ${o.long}`];
  if (o.mandatory || known === 'required') o.description += ' (required)';
  else if (known) o.description += ` (default: ${known})`;
  else if (o.negate) o.description += ` (default: ${o.long!.replace(/^--no-/, '')} on)`;
  else if (o.isBoolean()) o.description += ' (default: off)';
  else o.description += ' (default: none)';
}

/** Walks every command (and subcommand) of the program. */
export function completeHelpDefaults(program: Command): void {
  const walk = (cmd: Command): void => {
    for (const o of cmd.options) if (o.long !== '--help' && o.long !== '--version') complete(cmd.name(), o);
    cmd.commands.forEach(walk);
  };
  program.commands.forEach(walk);
}
