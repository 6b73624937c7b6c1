/**
 * Clean interruption of CLI runs. The CLI entry (src/cli.ts) calls installInterruptHandlers(); the
 * library never does (a host application keeps its own signal behaviour), so the registration functions
 * below are harmless no-ops for library users: they only fill a registry that nothing reads.
 *
 * On SIGINT / SIGTERM / SIGHUP the handler, synchronously and once:
 *  1. runs the registered cleanups, newest first (e.g. `train` removes its RUN_DIR.tmp-<pid> staging
 *     folder, `export` its staging folder);
 *  2. deletes every live temp file of src/util/atomic-write.ts (the half-written outputs: every table
 *     writer, ONNX file and embedding-cache entry goes through it, so no target path is ever partial);
 *  3. prints `edu-train: interrupted: <message> (SIGINT)`: by default "no output written"; `annotate`
 *     says how many rows are committed (its committed parts and checkpoint stay, and a rerun resumes);
 *  4. exits with 128 + the signal number (130 SIGINT, 143 SIGTERM, 129 SIGHUP), like a shell reports it.
 *
 * A second signal while the first is handled is ignored (the cleanup is short and synchronous).
 */
import { rmSync } from 'node:fs';
import { removeLiveTempFiles } from './atomic-write.js';

export const INTERRUPT_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
export type InterruptSignal = keyof typeof INTERRUPT_SIGNALS;

export const DEFAULT_INTERRUPT_MESSAGE = 'no output written';

const cleanups: (() => void)[] = [];
let message: (() => string) | null = null;
let installed = false;
let handling = false;

/** Registers a synchronous cleanup for an interrupt; returns a function that unregisters it. */
export function onInterrupt(cleanup: () => void): () => void {
  cleanups.push(cleanup);
  return () => {
    const i = cleanups.lastIndexOf(cleanup);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** On an interrupt, remove this file or folder (recursively) if it exists. */
export function removeOnInterrupt(path: string): () => void {
  return onInterrupt(() => rmSync(path, { recursive: true, force: true }));
}

/** What the interrupt line says after "interrupted: " (null: the default, "no output written"). */
export function setInterruptMessage(describe: (() => string) | null): void {
  message = describe;
}

export interface InterruptHooks {
  /** Default: process.stderr.write. */
  write?: (line: string) => void;
  /** Default: process.exit. */
  exit?: (code: number) => void;
}

/**
 * The work of the signal handler, exported for tests: cleanups, temp files, message; returns the exit
 * code (128 + signal number) after calling hooks.exit with it.
 */
export function handleInterrupt(signal: InterruptSignal, hooks: InterruptHooks = {}): number {
  const code = INTERRUPT_SIGNALS[signal];
  const write = hooks.write ?? ((s: string) => void process.stderr.write(s));
  const exit = hooks.exit ?? ((c: number) => process.exit(c));
  if (handling) return code;
  handling = true;
  try {
    for (const c of [...cleanups].reverse()) {
      try {
        c();
      } catch {
        /* best effort: keep cleaning */
      }
    }
    removeLiveTempFiles();
    let what = DEFAULT_INTERRUPT_MESSAGE;
    try {
      if (message) what = message();
    } catch {
      /* keep the default */
    }
    // A progress bar may own the current line of a terminal.
    write(`${process.stderr.isTTY ? '\n' : ''}edu-train: interrupted: ${what} (${signal})\n`);
  } finally {
    exit(code);
  }
  return code;
}

/** Installs the handlers (once). Only the CLI entry calls this. */
export function installInterruptHandlers(hooks: InterruptHooks = {}): void {
  if (installed) return;
  installed = true;
  for (const signal of Object.keys(INTERRUPT_SIGNALS) as InterruptSignal[]) {
    process.on(signal, () => handleInterrupt(signal, hooks));
  }
}

/** Test helper: forget registered cleanups, the message and the handling state (not the handlers). */
export function resetInterruptStateForTests(): void {
  cleanups.length = 0;
  message = null;
  handling = false;
}
