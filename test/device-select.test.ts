/**
 * --device parsing and selection (src/device/select.ts) with injected cudaInfo() probes, so every
 * branch runs without a GPU: no driver, no device, old GPU, bad index, a build without CUDA, auto.
 */
import { describe, expect, it } from 'vitest';
import { cudaUnavailableReason, describeChoice, parseDevice, selectDevice } from '../src/device/select.js';
import type { CudaInfo } from '../src/native/addon-types.js';
import { UsageError } from '../src/util/errors.js';

const noDriver: CudaInfo = {
  compiled: true, runtimeVersion: 13000, driverVersion: 0, deviceCount: 0, devices: [],
  error: 'cudaGetDeviceCount: cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version',
};
const notCompiled: CudaInfo = {
  compiled: false, runtimeVersion: 0, driverVersion: 0, deviceCount: 0, devices: [],
  error: 'this build of edu-train has no CUDA backend (nvcc was not found, or EDU_CUDA=OFF, when the addon was built)',
};
const h100 = { index: 0, name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', multiProcessors: 132, totalMemory: 85e9, usable: true };
const t4 = { index: 1, name: 'Tesla T4', computeCapability: '7.5', multiProcessors: 40, totalMemory: 16e9, usable: false, reason: 'compute capability 7.5 < 8.0' };
const twoGpus: CudaInfo = { compiled: true, runtimeVersion: 13000, driverVersion: 13000, deviceCount: 2, devices: [h100, t4] };
const onlyT4: CudaInfo = { ...twoGpus, deviceCount: 1, devices: [{ ...t4, index: 0 }] };

describe('parseDevice', () => {
  it('accepts auto, cpu, cuda, cuda:N (any case, blanks)', () => {
    expect(parseDevice(undefined)).toEqual({ kind: 'cpu' });
    expect(parseDevice('cpu')).toEqual({ kind: 'cpu' });
    expect(parseDevice(' AUTO ')).toEqual({ kind: 'auto' });
    expect(parseDevice('cuda')).toEqual({ kind: 'cuda', index: 0, explicitIndex: false });
    expect(parseDevice('cuda:3')).toEqual({ kind: 'cuda', index: 3, explicitIndex: true });
  });
  it.each(['gpu', 'cuda:', 'cuda:-1', 'cuda:x', 'cuda:1.5', 'mps', ''])('rejects %j with a UsageError', (v) => {
    expect(() => parseDevice(v)).toThrow(UsageError);
    expect(() => parseDevice(v)).toThrow(/expected auto, cpu, cuda or cuda:N/);
  });
});

describe('selectDevice', () => {
  it('cpu never probes CUDA', () => {
    expect(selectDevice(parseDevice('cpu'), () => { throw new Error('probed'); })).toEqual({ kind: 'cpu' });
  });
  it('cuda without a driver fails with the runtime reason, never falls back', () => {
    const f = () => selectDevice(parseDevice('cuda'), () => noDriver);
    expect(f).toThrow(UsageError);
    expect(f).toThrow(/^--device cuda: no usable NVIDIA GPU \(cudaGetDeviceCount: cudaErrorInsufficientDriver/);
  });
  it('cuda on a build without CUDA / an addon without cudaInfo', () => {
    expect(() => selectDevice(parseDevice('cuda'), () => notCompiled)).toThrow(/--device cuda: this build of edu-train has no CUDA backend/);
    expect(() => selectDevice(parseDevice('cuda:0'), () => undefined)).toThrow(/--device cuda:0: this build of edu-train has no CUDA backend/);
  });
  it('a probe that throws is reported as the reason', () => {
    expect(() => selectDevice(parseDevice('cuda'), () => { throw new Error('boom'); })).toThrow(/no usable NVIDIA GPU \(boom\)/);
  });
  it('cuda:N picks device N, rejects a missing or pre-Ampere one', () => {
    expect(selectDevice(parseDevice('cuda:0'), () => twoGpus)).toEqual({ kind: 'cuda', index: 0, name: h100.name, computeCapability: '9.0' });
    expect(() => selectDevice(parseDevice('cuda:1'), () => twoGpus)).toThrow(/cuda:1 \(Tesla T4\) is not usable: compute capability 7.5/);
    expect(() => selectDevice(parseDevice('cuda:5'), () => twoGpus)).toThrow(/there is no CUDA device 5: 2 device\(s\) visible/);
  });
  it('auto: first usable GPU, else the CPU with the reason', () => {
    expect(selectDevice(parseDevice('auto'), () => twoGpus)).toMatchObject({ kind: 'cuda', index: 0 });
    const cpu = selectDevice(parseDevice('auto'), () => noDriver);
    expect(cpu.kind).toBe('cpu');
    expect(cpu.kind === 'cpu' && cpu.reason).toMatch(/no usable NVIDIA GPU/);
    expect(selectDevice(parseDevice('auto'), () => onlyT4).kind).toBe('cpu');
    expect(selectDevice(parseDevice('auto'), () => undefined).kind).toBe('cpu');
    expect(describeChoice(cpu, 'cpu avx2 x 2 threads')).toMatch(/^\[edu-train\] --device auto: using the CPU \(no usable NVIDIA GPU.*kernels: cpu avx2/);
    expect(describeChoice({ kind: 'cuda', index: 0, name: 'H100', computeCapability: '9.0' }, 'gemm=mma')).toBe(
      '[edu-train] --device auto: using cuda:0 (H100, sm_90); kernels: gemm=mma');
  });
  it('cudaUnavailableReason is undefined exactly for a usable device', () => {
    expect(cudaUnavailableReason(twoGpus, 0)).toBeUndefined();
    expect(cudaUnavailableReason(twoGpus, 1)).toBeDefined();
    expect(cudaUnavailableReason({ ...twoGpus, deviceCount: 0, devices: [] }, 0)).toMatch(/0 devices/);
  });
});
