#!/usr/bin/env node
/** The `edu-train` executable: runs the command tree of src/program.ts and sets the exit code. */
import { main } from './program.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`edu-train: fatal: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
