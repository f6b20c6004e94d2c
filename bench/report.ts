import { sizeLabel, type BenchOptions } from './config.js';
import { PUT_MODES, type PhaseResult, type TargetResults } from './scenarios.js';

/** Issue 4's targets, gateway against the hashing pass-through (the floor), and issue 5's ratio. */

export type Verdict = 'PASS' | 'FAIL' | 'n/a';

export interface CheckResult {
  target: string;
  check: string;
  measured: string;
  verdict: Verdict;
  reason?: string;
}

const FLOOR = 'passthrough';
const BACKEND_DIRECT = 'null-s3';
const GATEWAYS = ['gateway-s3', 'gateway-fs'];
export const RSS_LIMIT_BYTES = 200e6;

interface Rule {
  phaseId: string;
  /** Minimum gateway/floor ratio of the phase's rate, if any. */
  minRatio?: number;
  maxCpuMsPerMiB?: number;
}

function rules(options: BenchOptions): Rule[] {
  const out: Rule[] = [{ phaseId: 'small.PUT', minRatio: 0.5 }, { phaseId: 'small.GET', minRatio: 0.7 }];
  for (const { label } of options.transfers) {
    out.push({ phaseId: `put.unsigned.${label}`, minRatio: 0.9, maxCpuMsPerMiB: 5 });
    out.push({ phaseId: `put.sha256.${label}`, minRatio: 0.9, maxCpuMsPerMiB: 5 });
    out.push({ phaseId: `put.chunked-signed.${label}`, maxCpuMsPerMiB: 6 });
    out.push({ phaseId: `get.${label}`, minRatio: 0.9, maxCpuMsPerMiB: 2.5 });
  }
  return out;
}

const rate = (phase: PhaseResult | undefined): number | undefined => phase?.opsPerSec ?? phase?.mbPerSec;

/** gateway/floor for the same phase; undefined when either side has no figure. */
export function ratio(results: Record<string, TargetResults>, target: string, phaseId: string, reference = FLOOR): number | undefined {
  const mine = rate(results[target]?.phases[phaseId]);
  const theirs = rate(results[reference]?.phases[phaseId]);
  return mine === undefined || theirs === undefined || theirs === 0 ? undefined : mine / theirs;
}

export function evaluateChecks(options: BenchOptions, results: Record<string, TargetResults>): CheckResult[] {
  const checks: CheckResult[] = [];
  for (const target of GATEWAYS) {
    if (!results[target]) continue;
    for (const rule of rules(options)) {
      const phase = results[target]!.phases[rule.phaseId];
      const name = [
        phase?.label ?? rule.phaseId,
        rule.minRatio !== undefined ? `>= ${rule.minRatio}x floor` : '',
        rule.maxCpuMsPerMiB !== undefined ? `<= ${rule.maxCpuMsPerMiB} ms/MiB` : '',
      ]
        .filter(Boolean)
        .join(', ');
      if (!phase || phase.na) {
        checks.push({ target, check: name, measured: '-', verdict: 'n/a', reason: phase?.na ?? results[target]!.na ?? 'not run' });
        continue;
      }
      const measured: string[] = [];
      let verdict: Verdict = 'PASS';
      let reason: string | undefined;
      if (rule.minRatio !== undefined) {
        const r = ratio(results, target, rule.phaseId);
        if (r === undefined) {
          verdict = 'n/a';
          reason = 'no pass-through figure to compare with';
        } else {
          measured.push(`${r.toFixed(2)}x`);
          if (r < rule.minRatio) verdict = 'FAIL';
        }
      }
      if (rule.maxCpuMsPerMiB !== undefined) {
        const cpu = phase.cpuMsPerMiB;
        if (cpu == null) {
          verdict = 'n/a';
          reason = 'CPU not measurable (/proc)';
        } else {
          measured.push(`${cpu.toFixed(2)} ms/MiB`);
          if (cpu > rule.maxCpuMsPerMiB && verdict !== 'n/a') verdict = 'FAIL';
        }
      }
      checks.push({ target, check: name, measured: measured.join(', ') || '-', verdict, ...(reason ? { reason } : {}) });
    }
    const concurrent = results[target]!.phases['concurrent.put'];
    const rssCheck = `peak RSS during ${options.concurrentUploads.count} x PUT ${sizeLabel(options.concurrentUploads.size)} <= ${RSS_LIMIT_BYTES / 1e6} MB`;
    if (!concurrent || concurrent.na || concurrent.peakRssBytes == null) {
      checks.push({ target, check: rssCheck, measured: '-', verdict: 'n/a', reason: concurrent?.na ?? 'not measured' });
    } else {
      // Under tsx the figure includes the loader's own isolate, which production does not carry.
      const measured = `${(concurrent.peakRssBytes / 1e6).toFixed(0)} MB${options.compiled ? '' : ' (tsx; see --compiled)'}`;
      checks.push({ target, check: rssCheck, measured, verdict: concurrent.peakRssBytes <= RSS_LIMIT_BYTES ? 'PASS' : 'FAIL' });
    }
  }
  return checks;
}

function table(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const full = rows.filter((row) => row.length === header.length);
  const widths = header.map((h, i) => Math.max(h.length, ...full.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => {
    // A shorter row is `target, message`: the message runs across the remaining columns.
    if (cells.length !== header.length) return `${cells[0]!.padEnd(widths[0]!)}  ${cells.slice(1).join('  ')}`;
    return cells.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  };
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const fixed = (value: number | null | undefined, digits: number): string => (value == null ? '-' : value.toFixed(digits));
const times = (value: number | undefined): string => (value === undefined ? '-' : `${value.toFixed(2)}x`);
/** Reasons can be long (an S3 error message); the table gets the start, latest.json the whole. */
const brief = (reason: string | undefined, max = 90): string => (reason === undefined ? '' : reason.length > max ? `${reason.slice(0, max - 3)}...` : reason);
const megabytes = (bytes: number | null | undefined): string => (bytes == null ? '-' : `${(bytes / 1e6).toFixed(0)} MB`);

/**
 * The rows of one table for one target. When none of its phases has a figure (a gateway whose S3
 * operations are not built yet), one line with the first reason replaces them.
 */
function targetRows(result: TargetResults, ids: string[], row: (phase: PhaseResult) => string[]): string[][] {
  const phases = ids.map((id) => result.phases[id]).filter((phase): phase is PhaseResult => phase !== undefined);
  const measured = phases.filter((phase) => !phase.na);
  if (measured.length === 0) return [[result.name, `n/a (${brief(result.na ?? phases[0]?.na ?? 'not run')})`]];
  return phases.map((phase) => (phase.na ? [result.name, phase.label, `n/a (${brief(phase.na)})`] : row(phase)));
}

export function renderReport(options: BenchOptions, results: Record<string, TargetResults>, checks: CheckResult[], meta: Record<string, string>): string {
  const names = options.targets.filter((name) => results[name]);
  const isGateway = (name: string): boolean => GATEWAYS.includes(name);
  const out: string[] = [];
  out.push(`JettyThunder bench${options.quick ? ' (--quick)' : ''}: ${meta.date}, Node ${meta.node}, ${meta.cpus} CPUs (${meta.cpuModel})`);
  const profiled = options.profile ? ', CPU-profiled (--profile: its CPU figures include the profiler)' : '';
  out.push(`gateway: ${options.compiled ? 'src/ transpiled to JS (--compiled)' : 'node --import tsx src/cli.ts serve'}, LOG_LEVEL=${options.gatewayLogLevel}${profiled}, PostgreSQL ${meta.postgres ?? ''}`.trimEnd());
  out.push('null-s3 = the null S3 endpoint, direct (ceiling); passthrough = Node proxy hashing SHA-256 + MD5 (floor);');
  out.push('gateway-s3 / gateway-fs = the gateway over the null endpoint / over local disk. "vs floor" = target / passthrough.');
  out.push('cpu = the measured process only (all its threads, from /proc); client% / null% / other% = CPU of the load generator / the null');
  out.push('endpoint / processes outside the bench, during the phase, in % of one core. All of them share the machine\'s cores.');
  if (meta.machineBusyBeforePct !== undefined) {
    const busy = Number(meta.machineBusyBeforePct);
    out.push(`Machine busy before the run: ${busy.toFixed(0)}% of one core${busy > 25 ? ' -- WARNING: other work was running; figures are noisy' : ''}.`);
  }

  const small = options.small;
  out.push('', `${sizeLabel(small.size)} objects, concurrency ${small.concurrency}, at most ${small.maxOps} ops or ${small.maxMs / 1000} s per op (PUT: hex SHA-256 payload)`);
  const smallRows = names.flatMap((name) =>
    targetRows(results[name]!, ['small.PUT', 'small.GET', 'small.HEAD'], (phase) => [
      name,
      phase.label.split(' ')[0]!,
      fixed(phase.opsPerSec, 0),
      fixed(phase.p50Ms, 2),
      fixed(phase.p99Ms, 2),
      fixed(phase.cpuMsPerOp, 3),
      isGateway(name) ? fixed(phase.postgresCpuMsPerOp, 3) : '',
      fixed(phase.clientCpuPct, 0),
      fixed(phase.backendCpuPct, 0),
      fixed(phase.otherCpuPct, 0),
      isGateway(name) ? times(ratio(results, name, phase.id)) : '',
    ]),
  );
  out.push(table(['target', 'op', 'ops/s', 'p50 ms', 'p99 ms', 'cpu ms/op', 'pg ms/op', 'client%', 'null%', 'other%', 'vs floor'], smallRows, new Set([2, 3, 4, 5, 6, 7, 8, 9, 10])));

  out.push('', 'Transfers, one stream at a time (MB/s = 10^6 B/s; PUT chunked = STREAMING-AWS4-HMAC-SHA256-PAYLOAD, 64 KiB chunks)');
  const transferIds = options.transfers.flatMap(({ label }) => [...PUT_MODES.map(({ mode }) => `put.${mode}.${label}`), `get.${label}`]);
  const transferRows = names.flatMap((name) =>
    targetRows(results[name]!, transferIds, (phase) => [
      name,
      phase.label,
      fixed(phase.mbPerSec, 0),
      fixed(phase.cpuMsPerMiB, 2),
      fixed(phase.clientCpuPct, 0),
      fixed(phase.backendCpuPct, 0),
      fixed(phase.otherCpuPct, 0),
      isGateway(name) ? times(ratio(results, name, phase.id)) : '',
    ]),
  );
  out.push(table(['target', 'op', 'MB/s', 'cpu ms/MiB', 'client%', 'null%', 'other%', 'vs floor'], transferRows, new Set([2, 3, 4, 5, 6, 7])));

  out.push('', 'Concurrent uploads (UNSIGNED-PAYLOAD) and multipart (UNSIGNED-PAYLOAD parts); "vs direct" = target / null-s3 direct (issue 5)');
  const otherRows = names.flatMap((name) =>
    targetRows(results[name]!, ['concurrent.put', 'multipart'], (phase) => [
      name,
      phase.label,
      fixed(phase.mbPerSec, 0),
      fixed(phase.cpuMsPerMiB, 2),
      phase.peakRssBytes == null ? '' : (phase.peakRssBytes / 1e6).toFixed(0),
      fixed(phase.otherCpuPct, 0),
      name === BACKEND_DIRECT ? '' : times(ratio(results, name, phase.id, BACKEND_DIRECT)),
    ]),
  );
  out.push(table(['target', 'phase', 'MB/s', 'cpu ms/MiB', 'peak RSS MB', 'other%', 'vs direct'], otherRows, new Set([2, 3, 4, 5, 6])));

  out.push('', 'Memory of each measured process: RSS once started (idle) and its peak over the run (VmHWM)');
  out.push(names.map((name) => `${name} ${megabytes(results[name]!.idleRssBytes)} idle, ${megabytes(results[name]!.peakRssBytes)} peak`).join('; '));
  if (!options.compiled) out.push('(Under tsx every process also holds the loader\'s own V8 isolate, tens of MB; --compiled runs the gateway as production does.)');

  if (checks.length > 0) {
    out.push('', "Checks against issue 4's targets (floor = passthrough)");
    const checkRows: string[][] = [];
    for (const target of GATEWAYS) {
      const mine = checks.filter((c) => c.target === target);
      if (mine.length === 0) continue;
      if (mine.every((c) => c.verdict === 'n/a')) checkRows.push([target, `all ${mine.length} n/a (${brief(mine[0]!.reason)})`]);
      else checkRows.push(...mine.map((c) => [c.target, c.check, c.measured, c.verdict === 'n/a' ? `n/a (${brief(c.reason, 60)})` : c.verdict]));
    }
    out.push(table(['target', 'check', 'measured', 'result'], checkRows, new Set()));
    const count = (verdict: Verdict): number => checks.filter((c) => c.verdict === verdict).length;
    out.push(`${count('PASS')} PASS, ${count('FAIL')} FAIL, ${count('n/a')} n/a`);
  }
  return out.join('\n');
}
