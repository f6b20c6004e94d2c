import { sizeLabel, type BenchOptions } from './config.js';
import type { Job, PutMode, SmallResult, TransferResult } from './load-client.js';
import type { LoadDriver } from './load-driver.js';
import { cpuBetween, CpuMeter, cpuOfPids, machineBusyMs, peakRssBytes, resetPeakRss, RssSampler } from './proc-stats.js';
import type { RunningTarget } from './targets.js';

/** One measured phase against one target. Absent figures mean not measured; `na` says why. */
export interface PhaseResult {
  id: string;
  label: string;
  size: number;
  na?: string;
  ops?: number;
  elapsedMs?: number;
  opsPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  mbPerSec?: number;
  /** CPU of the measured process (gateway or proxy) over the phase. */
  cpuMs?: number | null;
  cpuMsPerOp?: number | null;
  cpuMsPerMiB?: number | null;
  /** The load generator's and the null endpoint's CPU as % of one core: are they the bottleneck? */
  clientCpuPct?: number | null;
  backendCpuPct?: number | null;
  /** CPU of the PostgreSQL backends serving the gateway's database, per op (small phases). */
  postgresCpuMsPerOp?: number | null;
  /**
   * CPU that processes outside the bench used meanwhile (the machine's busy time minus ours), % of one
   * core: on a shared 2-core machine, a large figure means the phase's numbers are not to be trusted.
   */
  otherCpuPct?: number | null;
  peakRssBytes?: number | null;
}

export interface TargetResults {
  name: string;
  url?: string;
  na?: string;
  phases: Record<string, PhaseResult>;
  /** VmRSS once started, before any load. */
  idleRssBytes?: number | null;
  /** VmHWM over the target's whole life. */
  peakRssBytes?: number | null;
}

export const PUT_MODES: { mode: PutMode; label: string }[] = [
  { mode: 'unsigned', label: 'PUT unsigned' },
  { mode: 'sha256', label: 'PUT sha256' },
  { mode: 'chunked-signed', label: 'PUT chunked' },
];

const MiB = 1024 * 1024;

/** Thrown when the load client can no longer be trusted (a job outlived its bound): the run stops. */
export class RunAborted extends Error {}

export interface ScenarioContext {
  options: BenchOptions;
  driver: LoadDriver;
  /** The null endpoint's pid, when the target sits in front of it. */
  backendPid: number | undefined;
  /** Epoch ms after which no phase starts. */
  deadline: number;
  tag: string;
}

/** A bound for a job moving `bytes`: generous (20 MB/s) but finite, and never past the run's budget. */
function transferTimeoutMs(ctx: ScenarioContext, bytes: number): number {
  return Math.max(10_000, Math.min(60_000 + (bytes / 20e6) * 1000, ctx.deadline - Date.now() + 30_000));
}

interface Measurement<T> {
  result: T;
  cpu: Record<string, number | null>;
  postgresCpuMs: number;
  /** CPU used by processes that are not the bench's, over the job. */
  otherCpuMs: number | null;
}

async function measure<T extends SmallResult | TransferResult>(ctx: ScenarioContext, target: RunningTarget, job: Job, timeoutMs: number): Promise<Measurement<T>> {
  const machineBefore = machineBusyMs();
  const postgresBefore = cpuOfPids(await target.postgresPids());
  const cpu = new CpuMeter({ target: target.pid, client: ctx.driver.pid, backend: ctx.backendPid });
  let result: T;
  try {
    result = await ctx.driver.run<T>(job, timeoutMs);
  } catch (error) {
    throw new RunAborted((error as Error).message);
  }
  const used = cpu.read();
  const postgresCpuMs = cpuBetween(postgresBefore, cpuOfPids(await target.postgresPids()));
  const machineAfter = machineBusyMs();
  const ours = (used.target ?? 0) + (used.client ?? 0) + (used.backend ?? 0) + postgresCpuMs;
  const otherCpuMs = machineBefore === null || machineAfter === null ? null : Math.max(0, machineAfter - machineBefore - ours);
  return { result, cpu: used, postgresCpuMs, otherCpuMs };
}

const pct = (cpuMs: number | null | undefined, elapsedMs: number): number | null => (cpuMs == null || elapsedMs <= 0 ? null : (cpuMs / elapsedMs) * 100);

function budgetLeft(ctx: ScenarioContext): boolean {
  return Date.now() < ctx.deadline;
}

async function smallPhase(ctx: ScenarioContext, target: RunningTarget, op: 'PUT' | 'GET' | 'HEAD', keyCount: number): Promise<PhaseResult> {
  const { small } = ctx.options;
  const base = { id: `small.${op}`, label: `${op} ${sizeLabel(small.size)}`, size: small.size };
  if (!budgetLeft(ctx)) return { ...base, na: 'run time budget spent' };
  const job: Job = { kind: 'small', target: target.endpoint, op, size: small.size, concurrency: small.concurrency, maxOps: small.maxOps, maxMs: small.maxMs, keyPrefix: 'small/', keyCount, tag: ctx.tag };
  const { result, cpu, postgresCpuMs, otherCpuMs } = await measure<SmallResult>(ctx, target, job, small.maxMs + 30_000);
  if (result.ops === 0) return { ...base, na: result.error ?? 'no operation succeeded' };
  if (result.error) return { ...base, ops: result.ops, na: `after ${result.ops} ops: ${result.error}` };
  return {
    ...base,
    ops: result.ops,
    elapsedMs: result.elapsedMs,
    opsPerSec: result.opsPerSec,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    cpuMs: cpu.target ?? null,
    cpuMsPerOp: cpu.target == null ? null : cpu.target / result.ops,
    clientCpuPct: pct(cpu.client, result.elapsedMs),
    backendCpuPct: pct(cpu.backend, result.elapsedMs),
    postgresCpuMsPerOp: postgresCpuMs / result.ops,
    otherCpuPct: pct(otherCpuMs, result.elapsedMs),
  };
}

function transferPhase(id: string, label: string, size: number, { result, cpu, otherCpuMs }: Measurement<TransferResult>): PhaseResult {
  const base = { id, label, size };
  if (result.ops === 0) return { ...base, na: result.error ?? 'no transfer succeeded' };
  if (result.error) return { ...base, ops: result.ops, na: `after ${result.ops} ops: ${result.error}` };
  return {
    ...base,
    ops: result.ops,
    elapsedMs: result.elapsedMs,
    mbPerSec: result.mbPerSec,
    cpuMs: cpu.target ?? null,
    cpuMsPerMiB: cpu.target == null ? null : cpu.target / (result.bytes / MiB),
    clientCpuPct: pct(cpu.client, result.elapsedMs),
    backendCpuPct: pct(cpu.backend, result.elapsedMs),
    otherCpuPct: pct(otherCpuMs, result.elapsedMs),
  };
}

async function deleteQuietly(ctx: ScenarioContext, target: RunningTarget, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  // Deleting keeps the fs backend's disk use bounded; a failure here is not a measurement.
  await ctx.driver.run({ kind: 'delete', target: target.endpoint, keys }, 120_000).catch(() => undefined);
}

/** Single-stream PUTs in each payload mode, then GETs of what was put, for one size. */
async function transferPhases(ctx: ScenarioContext, target: RunningTarget, label: string, size: number, reps: number): Promise<PhaseResult[]> {
  const results: PhaseResult[] = [];
  let readable: string[] = [];
  const written: string[] = [];
  for (const { mode, label: modeLabel } of PUT_MODES) {
    const id = `put.${mode}.${label}`;
    const phaseLabel = `${modeLabel} ${sizeLabel(size)}`;
    if (!budgetLeft(ctx)) {
      results.push({ id, label: phaseLabel, size, na: 'run time budget spent' });
      continue;
    }
    const keys = Array.from({ length: reps }, (_, i) => `${label}/${mode}-${i}`);
    const job: Job = { kind: 'put', target: target.endpoint, size, mode, keys, concurrency: 1, timeoutMs: transferTimeoutMs(ctx, size), tag: ctx.tag };
    const measured = await measure<TransferResult>(ctx, target, job, transferTimeoutMs(ctx, size * reps));
    written.push(...keys);
    const phase = transferPhase(id, phaseLabel, size, measured);
    if (phase.na === undefined && readable.length === 0) readable = keys;
    results.push(phase);
  }
  const getId = `get.${label}`;
  const getLabel = `GET ${sizeLabel(size)}`;
  if (readable.length === 0) results.push({ id: getId, label: getLabel, size, na: 'nothing to read: every PUT failed' });
  else if (!budgetLeft(ctx)) results.push({ id: getId, label: getLabel, size, na: 'run time budget spent' });
  else {
    const keys = Array.from({ length: reps }, (_, i) => readable[i % readable.length]!);
    const job: Job = { kind: 'get', target: target.endpoint, keys, size, concurrency: 1, timeoutMs: transferTimeoutMs(ctx, size) };
    results.push(transferPhase(getId, getLabel, size, await measure<TransferResult>(ctx, target, job, transferTimeoutMs(ctx, size * reps))));
  }
  await deleteQuietly(ctx, target, written);
  return results;
}

/** N uploads of the large size at once: throughput, and the measured process's peak RSS meanwhile. */
async function concurrentUploads(ctx: ScenarioContext, target: RunningTarget): Promise<PhaseResult> {
  const { count, size } = ctx.options.concurrentUploads;
  const base = { id: 'concurrent.put', label: `${count} x PUT ${sizeLabel(size)}`, size };
  if (!budgetLeft(ctx)) return { ...base, na: 'run time budget spent' };
  const keys = Array.from({ length: count }, (_, i) => `concurrent/${i}`);
  const hwmReset = resetPeakRss(target.pid);
  const sampler = new RssSampler(target.pid);
  sampler.start();
  const job: Job = { kind: 'put', target: target.endpoint, size, mode: 'unsigned', keys, concurrency: count, timeoutMs: transferTimeoutMs(ctx, size * count), tag: ctx.tag };
  const measured = await measure<TransferResult>(ctx, target, job, transferTimeoutMs(ctx, size * count));
  const sampled = sampler.stop();
  const hwm = hwmReset ? peakRssBytes(target.pid) : null;
  await deleteQuietly(ctx, target, keys);
  return { ...transferPhase(base.id, base.label, size, measured), peakRssBytes: Math.max(hwm ?? 0, sampled) || null };
}

async function multipartUpload(ctx: ScenarioContext, target: RunningTarget): Promise<PhaseResult> {
  const { size, partSize, parallel } = ctx.options.multipart;
  const base = { id: 'multipart', label: `multipart ${sizeLabel(size)} (${sizeLabel(partSize)} x ${parallel})`, size };
  if (!budgetLeft(ctx)) return { ...base, na: 'run time budget spent' };
  const job: Job = { kind: 'multipart', target: target.endpoint, key: 'multipart/object', size, partSize, parallel, timeoutMs: transferTimeoutMs(ctx, partSize * parallel), tag: ctx.tag };
  const measured = await measure<TransferResult>(ctx, target, job, transferTimeoutMs(ctx, size));
  await deleteQuietly(ctx, target, ['multipart/object']);
  return transferPhase(base.id, base.label, size, measured);
}

/** Every phase against one target, in a fixed order; a failed phase is n/a and the next one still runs. */
export async function runTargetPhases(ctx: ScenarioContext, target: RunningTarget, log: (line: string) => void): Promise<Record<string, PhaseResult>> {
  const phases: Record<string, PhaseResult> = {};
  const record = (phase: PhaseResult): void => {
    phases[phase.id] = phase;
    log(`  ${phase.label.padEnd(28)} ${phase.na ? `n/a (${phase.na})` : phase.opsPerSec !== undefined ? `${phase.opsPerSec.toFixed(0)} ops/s` : `${phase.mbPerSec!.toFixed(0)} MB/s`}`);
  };
  const { small } = ctx.options;

  // Warm-up: JIT, connection pools and caches, so the measured phases see a running server.
  const warmupJob: Job = { kind: 'small', target: target.endpoint, op: 'PUT', size: small.size, concurrency: small.concurrency, maxOps: small.warmupOps, maxMs: 5_000, keyPrefix: 'warmup/', keyCount: 1, tag: ctx.tag };
  await ctx.driver.run(warmupJob, 40_000).catch((error: Error) => {
    throw new RunAborted(error.message);
  });

  const put = await smallPhase(ctx, target, 'PUT', 1);
  record(put);
  // After a failed PUT phase, which of the keys exist is unknown (16 in flight): nothing is read.
  const keyCount = put.na ? 0 : Math.min(put.ops ?? 0, small.readKeys);
  for (const op of ['GET', 'HEAD'] as const) {
    record(keyCount > 0 ? await smallPhase(ctx, target, op, keyCount) : { id: `small.${op}`, label: `${op} ${sizeLabel(small.size)}`, size: small.size, na: 'nothing to read: PUT failed' });
  }
  for (const { label, size, reps } of ctx.options.transfers) {
    for (const phase of await transferPhases(ctx, target, label, size, reps)) record(phase);
  }
  record(await concurrentUploads(ctx, target));
  record(await multipartUpload(ctx, target));
  return phases;
}
