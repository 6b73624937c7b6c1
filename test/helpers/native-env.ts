/**
 * Environments for programs that are not Node running edu-train. Under the sanitizer run (npm test's second
 * pass, scripts/hardening/asan-test.sh) the environment preloads the ASan/UBSan runtimes (LD_PRELOAD) and
 * points EDU_TRAIN_ADDON at the instrumented addon; Chromium and the Slurm daemons and tools must not get the
 * runtimes (Chromium hangs, dd/munged abort), and a process without them cannot load the instrumented addon.
 */
const SANITIZER_VARS = ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'];

/** `env` for a non-Node program: without the sanitizer runtimes. */
export function withoutSanitizerRuntime(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of SANITIZER_VARS) delete out[k];
  return out;
}

/**
 * `env` for a whole environment that edu-train also runs in without the runtimes (the jobs of the local
 * Slurm cluster): no runtimes, and therefore the ordinary build of the addon.
 */
export function withOrdinaryAddon(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = withoutSanitizerRuntime(env);
  delete out.EDU_TRAIN_ADDON;
  return out;
}
