#!/usr/bin/env node
/**
 * The `edu-train` executable: runs the command tree of src/program.ts and sets the exit code.
 * SIGINT / SIGTERM remove half-written outputs and exit 130 / 143 (src/util/interrupt.ts); only this
 * entry installs those handlers, never the library.
 */
import { main } from './program.js';
import { installInterruptHandlers } from './util/interrupt.js';

installInterruptHandlers();

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`edu-train: fatal: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
