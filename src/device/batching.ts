/**
 * Memory policy for GPU batches (pure logic, tested with fake encoders):
 *
 * - Token budget: a batch is cut so that rows x (longest row) <= maxBatchTokens (the padded request
 *   the host builds; the GPU computes only real tokens, so this bounds its activations too), and
 *   at most maxBatchSize rows. Rows come longest first, so the first row of a batch is its longest.
 * - The default budget comes from the device's free memory over the encoder's activation bytes per
 *   token, with a safety margin.
 * - Out of memory: the batch is halved (the budget drops to half the failed batch's tokens for
 *   every later batch too), retried and reported; a single row that still does not fit is an error.
 */

export interface BudgetInputs {
  /** Free device memory in bytes (after the weights are uploaded). */
  freeBytes: number;
  /** Activation bytes per token (NativeCudaEncoder.bytesPerToken). */
  bytesPerToken: number;
  /** Fraction of the free memory to plan for (default 0.8: room for the allocator, cuBLAS-free but other processes). */
  safety?: number;
  /** Clamp (defaults 256 .. 1,048,576 tokens). */
  min?: number;
  max?: number;
}

/** Tokens per batch that fit in free memory: floor(free x safety / bytesPerToken), rounded down to a multiple of 256. */
export function defaultMaxBatchTokens(x: BudgetInputs): number {
  const safety = x.safety ?? 0.8;
  const min = x.min ?? 256;
  const max = x.max ?? 1 << 20;
  if (!(x.bytesPerToken > 0) || !(x.freeBytes >= 0)) return min;
  let t = Math.floor((x.freeBytes * safety) / x.bytesPerToken);
  t = Math.floor(t / 256) * 256;
  return Math.max(min, Math.min(max, t));
}

/**
 * End (exclusive) of the batch that starts at `start`: rows are added while
 * (rows + 1) x max(length) <= maxTokens and rows < maxRows. Always at least one row.
 */
export function nextBatchEnd(lengths: readonly number[], start: number, maxTokens: number, maxRows: number): number {
  let longest = Math.max(1, lengths[start]);
  let end = start + 1;
  while (end < lengths.length && end - start < maxRows) {
    const l = Math.max(longest, lengths[end]);
    if ((end - start + 1) * l > maxTokens) break;
    longest = l;
    end++;
  }
  return end;
}

/** All batches of a token budget (no OOM handling): [start, end) ranges. */
export function planTokenBatches(lengths: readonly number[], maxTokens: number, maxRows = Number.MAX_SAFE_INTEGER): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < lengths.length; ) {
    const e = nextBatchEnd(lengths, s, maxTokens, maxRows);
    out.push([s, e]);
    s = e;
  }
  return out;
}

/** True for a CUDA (or host) out-of-memory error from the native addon. */
export function isOutOfMemory(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  if (e.code === 'EDU_CUDA_OOM') return true;
  return typeof e.message === 'string' && /out of memory/i.test(e.message);
}

export interface OomEvent {
  /** Rows and padded tokens of the batch that failed. */
  rows: number;
  tokens: number;
  /** The token budget from now on. */
  newMaxTokens: number;
  message: string;
}

export interface RunBatchesOptions {
  /** Row lengths in processing order (longest first for tight batches). */
  lengths: readonly number[];
  /** Token budget per batch; undefined = fixed batches of maxRows rows (the CPU behaviour). */
  maxTokens?: number;
  /** Rows per batch at most. */
  maxRows: number;
  /** Called after each halving. */
  onOom?: (e: OomEvent) => void;
}

export interface RunBatchesStats {
  batches: number;
  oomRetries: number;
  /** The budget at the end (after any halving). */
  finalMaxTokens?: number;
}

/**
 * Runs `run(start, end)` over consecutive batches. On an out-of-memory error the failed batch's
 * budget is halved (rows and tokens) and the same rows are retried in smaller batches.
 */
export async function runBatches(opts: RunBatchesOptions, run: (start: number, end: number) => Promise<void>): Promise<RunBatchesStats> {
  const { lengths } = opts;
  if (!Number.isInteger(opts.maxRows) || opts.maxRows < 1) throw new RangeError(`maxRows must be a positive integer, got ${opts.maxRows}`);
  if (opts.maxTokens !== undefined && !(Number.isInteger(opts.maxTokens) && opts.maxTokens >= 1)) {
    throw new RangeError(`maxTokens must be a positive integer, got ${opts.maxTokens}`);
  }
  let maxTokens = opts.maxTokens ?? Number.MAX_SAFE_INTEGER;
  let maxRows = opts.maxRows;
  const stats: RunBatchesStats = { batches: 0, oomRetries: 0 };
  for (let start = 0; start < lengths.length; ) {
    const end = nextBatchEnd(lengths, start, maxTokens, maxRows);
    try {
      await run(start, end);
    } catch (err) {
      const rows = end - start;
      if (!isOutOfMemory(err)) throw err;
      const tokens = rows * Math.max(1, lengths[start]);
      if (rows === 1) {
        const msg = err instanceof Error ? err.message : String(err);
        throw new Error(`out of memory even for a single sequence of ${tokens} tokens: ${msg}`, { cause: err });
      }
      maxRows = Math.max(1, Math.floor(rows / 2));
      maxTokens = Math.max(1, Math.floor(tokens / 2));
      stats.oomRetries++;
      opts.onOom?.({
        rows,
        tokens,
        newMaxTokens: maxTokens,
        message: `out of memory on a batch of ${rows} sequences (${tokens} padded tokens); halving to ` +
          `${maxRows} sequences / ${maxTokens} tokens and retrying`,
      });
      continue;
    }
    stats.batches++;
    start = end;
  }
  if (opts.maxTokens !== undefined) stats.finalMaxTokens = maxTokens;
  return stats;
}
