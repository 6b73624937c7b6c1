/** What a benchmark number needs next to it: which CPU, how many logical CPUs, how loaded. */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  logicalCpus: number;
  /** 1-minute load average when the run started: other work on the machine skews timings. */
  loadAverage1m: number;
}

/** The "model name" line of /proc/cpuinfo (Linux), else what os.cpus() reports. */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    /* not Linux */
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function machineInfo(): MachineInfo {
  return { cpuModel: cpuModel(), logicalCpus: availableParallelism(), loadAverage1m: loadavg()[0] };
}
