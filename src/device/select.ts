/**
 * Device selection: `--device auto|cpu|cuda[:N]`.
 *
 * - `cpu`: the CPU kernels.
 * - `cuda` / `cuda:N`: the CUDA backend on device N (default 0). No usable GPU, no driver or a build
 *   without CUDA is a UsageError (exit 2) naming the reason; never a silent CPU fallback.
 * - `auto`: the first usable CUDA device when there is one, else the CPU; the choice (and why) is
 *   reported so the caller can print it.
 *
 * Pure logic over an injected CudaInfo probe, so it is tested without a GPU.
 */
import type { CudaInfo } from '../native/addon-types.js';
import { UsageError } from '../util/errors.js';

export type DeviceRequest = { kind: 'auto' } | { kind: 'cpu' } | { kind: 'cuda'; index: number; explicitIndex: boolean };

export type DeviceChoice =
  | { kind: 'cpu'; /** Why auto chose the CPU (undefined when cpu was asked for). */ reason?: string }
  | { kind: 'cuda'; index: number; name: string; computeCapability: string };

/** Parses 'auto' | 'cpu' | 'cuda' | 'cuda:N' (case-insensitive, surrounding blanks ignored). */
export function parseDevice(value: string | undefined): DeviceRequest {
  const v = (value ?? 'cpu').trim().toLowerCase();
  if (v === 'cpu') return { kind: 'cpu' };
  if (v === 'auto') return { kind: 'auto' };
  if (v === 'cuda') return { kind: 'cuda', index: 0, explicitIndex: false };
  const m = /^cuda:(\d{1,4})$/.exec(v);
  if (m) return { kind: 'cuda', index: Number(m[1]), explicitIndex: true };
  throw new UsageError(`unknown device '${value}'; expected auto, cpu, cuda or cuda:N (N = GPU index, e.g. cuda:0)`);
}

/** How a device request reads in messages: "--device cuda:1". */
export function deviceFlag(req: DeviceRequest): string {
  return req.kind === 'cuda' ? `--device ${req.explicitIndex ? `cuda:${req.index}` : 'cuda'}` : `--device ${req.kind}`;
}

/** Why no CUDA device can be used, or undefined when device `index` is usable. */
export function cudaUnavailableReason(info: CudaInfo | undefined, index = 0): string | undefined {
  if (info === undefined) return 'this build of edu-train has no CUDA backend (the native addon predates it; rebuild with `npm run build:native`)';
  if (!info.compiled) {
    return info.error ?? 'this build of edu-train has no CUDA backend (nvcc was not found when the addon was built)';
  }
  if (info.error !== undefined || info.deviceCount === 0) {
    return `no usable NVIDIA GPU (${info.error ?? 'cudaGetDeviceCount: 0 devices'})`;
  }
  const dev = info.devices.find((d) => d.index === index);
  if (dev === undefined) {
    return `there is no CUDA device ${index}: ${info.deviceCount} device(s) visible (${info.devices.map((d) => `cuda:${d.index} ${d.name}`).join(', ')})`;
  }
  if (!dev.usable) return `cuda:${index} (${dev.name}) is not usable: ${dev.reason ?? 'unknown reason'}`;
  return undefined;
}

/**
 * Resolves a request against what the runtime sees. `probe` returns the addon's cudaInfo() (or
 * undefined when the addon has none); it is only called for auto and cuda.
 */
export function selectDevice(req: DeviceRequest, probe: () => CudaInfo | undefined): DeviceChoice {
  if (req.kind === 'cpu') return { kind: 'cpu' };
  let info: CudaInfo | undefined;
  try {
    info = probe();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    info = { compiled: true, runtimeVersion: 0, driverVersion: 0, deviceCount: 0, error: msg, devices: [] };
  }
  if (req.kind === 'cuda') {
    const why = cudaUnavailableReason(info, req.index);
    if (why !== undefined) {
      const so = why.includes('no CUDA backend') ? '' : ', so no CUDA backend is available here';
      throw new UsageError(`${deviceFlag(req)}: ${why}${so}. Use --device cpu (or auto) to run on the CPU.`);
    }
    const dev = info!.devices.find((d) => d.index === req.index)!;
    return { kind: 'cuda', index: dev.index, name: dev.name, computeCapability: dev.computeCapability };
  }
  // auto: first usable GPU
  const usable = info?.devices.find((d) => d.usable);
  if (info !== undefined && info.compiled && info.error === undefined && usable !== undefined) {
    return { kind: 'cuda', index: usable.index, name: usable.name, computeCapability: usable.computeCapability };
  }
  return { kind: 'cpu', reason: cudaUnavailableReason(info, 0) ?? 'no CUDA device with compute capability >= 8.0' };
}

/** One line for stderr describing what --device auto chose. */
export function describeChoice(choice: DeviceChoice, detail?: string): string {
  if (choice.kind === 'cuda') {
    return `[edu-train] --device auto: using cuda:${choice.index} (${choice.name}, sm_${choice.computeCapability.replace('.', '')})` +
      (detail ? `; kernels: ${detail}` : '');
  }
  return `[edu-train] --device auto: using the CPU (${choice.reason ?? 'cpu'})` + (detail ? `; kernels: ${detail}` : '');
}
