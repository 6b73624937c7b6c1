/**
 * Which shard this process is: --rank/--world-size, else EDU_RANK/EDU_WORLD_SIZE, else a Slurm job array
 * (SLURM_ARRAY_TASK_ID relative to SLURM_ARRAY_TASK_MIN, in steps of SLURM_ARRAY_TASK_STEP, out of
 * SLURM_ARRAY_TASK_COUNT), else a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --world-size).
 */
import { UsageError } from '../util/errors.js';

export interface Shard {
  rank: number;
  worldSize: number;
  /** Where the values came from, for the log. */
  source: string;
}

type Env = Record<string, string | undefined>;

function int(value: string, what: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new UsageError(`${what} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

export function resolveShard(flags: { rank?: number; worldSize?: number }, env: Env = process.env): Shard {
  const check = (s: Shard): Shard => {
    if (s.worldSize < 1) throw new UsageError(`world size must be at least 1 (from ${s.source})`);
    if (s.rank >= s.worldSize) throw new UsageError(`rank ${s.rank} is not below the world size ${s.worldSize} (from ${s.source})`);
    return s;
  };
  if (flags.rank !== undefined) {
    if (flags.worldSize === undefined && env.EDU_WORLD_SIZE === undefined) throw new UsageError('--rank needs --world-size (or EDU_WORLD_SIZE)');
    const worldSize = flags.worldSize ?? int(env.EDU_WORLD_SIZE!, 'EDU_WORLD_SIZE');
    return check({ rank: flags.rank, worldSize, source: '--rank/--world-size' });
  }
  if (env.EDU_RANK !== undefined) {
    const ws = flags.worldSize ?? (env.EDU_WORLD_SIZE !== undefined ? int(env.EDU_WORLD_SIZE, 'EDU_WORLD_SIZE') : undefined);
    if (ws === undefined) throw new UsageError('EDU_RANK is set but neither EDU_WORLD_SIZE nor --world-size is');
    return check({ rank: int(env.EDU_RANK, 'EDU_RANK'), worldSize: ws, source: 'EDU_RANK/EDU_WORLD_SIZE' });
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    const id = int(env.SLURM_ARRAY_TASK_ID, 'SLURM_ARRAY_TASK_ID');
    const min = env.SLURM_ARRAY_TASK_MIN !== undefined ? int(env.SLURM_ARRAY_TASK_MIN, 'SLURM_ARRAY_TASK_MIN') : 0;
    const step = env.SLURM_ARRAY_TASK_STEP !== undefined ? Math.max(1, int(env.SLURM_ARRAY_TASK_STEP, 'SLURM_ARRAY_TASK_STEP')) : 1;
    const count = env.SLURM_ARRAY_TASK_COUNT !== undefined ? int(env.SLURM_ARRAY_TASK_COUNT, 'SLURM_ARRAY_TASK_COUNT') : undefined;
    const worldSize = flags.worldSize ?? count;
    if (worldSize === undefined) throw new UsageError('SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT; pass --world-size');
    if ((id - min) % step !== 0) throw new UsageError(`SLURM_ARRAY_TASK_ID ${id} is not on the array's step ${step} from ${min}; pass --rank`);
    return check({ rank: (id - min) / step, worldSize, source: 'SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT' });
  }
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    if (flags.worldSize === undefined) throw new UsageError('JOB_COMPLETION_INDEX is set: pass --world-size (the Indexed Job\'s completions)');
    return check({ rank: int(env.JOB_COMPLETION_INDEX, 'JOB_COMPLETION_INDEX'), worldSize: flags.worldSize, source: 'JOB_COMPLETION_INDEX' });
  }
  if (flags.worldSize !== undefined && flags.worldSize > 1) {
    throw new UsageError(`--world-size ${flags.worldSize} needs a rank: --rank, EDU_RANK, a Slurm array task or JOB_COMPLETION_INDEX`);
  }
  return { rank: 0, worldSize: 1, source: 'default (one process)' };
}
