import { createReadStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { parseOptions, sizeLabel, USAGE, type BenchOptions, type TargetName } from './config.js';
import { LoadDriver } from './load-driver.js';
import { machineBusyPct, peakRssBytes, rssBytes, RssSampler } from './proc-stats.js';
import { compileGateway } from './compile-gateway.js';
import { Cleanup, REPO_ROOT } from './processes.js';
import { evaluateChecks, renderReport } from './report.js';
import { RunAborted, runTargetPhases, type TargetResults } from './scenarios.js';
import { makeWorkDir, postgresVersion, startGateway, startNullS3, startPassthrough, type RunningTarget, type StartContext } from './targets.js';

/**
 * `npm run bench`: starts the null S3 endpoint, the hashing pass-through and the gateway (over the null
 * endpoint and over local disk) on loopback, drives each in turn with the same SigV4 load from a
 * separate client process, and prints one table (stdout) and bench/results/latest.json. Progress goes
 * to stderr. Everything it starts is stopped, and its databases dropped, on success, error and Ctrl-C.
 */

const progress = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.slice(0, 300);
}

/** Starts every target up front, in parallel; a target that cannot start becomes n/a with the reason. */
async function startTargets(options: BenchOptions, ctx: StartContext, nullS3: RunningTarget): Promise<Map<TargetName, RunningTarget | Error>> {
  const starters: Record<TargetName, () => Promise<RunningTarget>> = {
    'null-s3': async () => nullS3,
    passthrough: () => startPassthrough(ctx, nullS3.endpoint.url),
    'gateway-s3': () => startGateway(ctx, 's3', nullS3.endpoint.url),
    'gateway-fs': () => startGateway(ctx, 'fs', nullS3.endpoint.url),
  };
  const started = await Promise.all(
    options.targets.map(async (name) => [name, await starters[name]().catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))))] as const),
  );
  return new Map(started);
}

/**
 * The temp dir and its logs go at cleanup; the warnings and errors of a target's log (pino levels 40+,
 * or any non-JSON line such as a stack trace) are kept beside the results, to explain an n/a. Returns
 * how many lines were kept.
 */
async function keepProblemLines(logFile: string, destination: string): Promise<number> {
  const kept: string[] = [];
  try {
    const lines = createInterface({ input: createReadStream(logFile), crlfDelay: Infinity });
    for await (const line of lines) {
      const level = /"level":(\d+)/.exec(line)?.[1];
      if (line.trim() !== '' && (level === undefined ? !line.startsWith('{') : Number(level) >= 40)) kept.push(line);
      // Bounded: a failing run can log an error per request.
      if (kept.length >= 2_000) break;
    }
  } catch {
    return 0;
  }
  await rm(destination, { force: true });
  if (kept.length === 0) return 0;
  await mkdir(path.dirname(destination), { recursive: true });
  await writeFile(destination, `${kept.join('\n')}\n`);
  return kept.length;
}

/** `interrupted` turns true on Ctrl-C: the run then reports nothing, so latest.json keeps the last whole run. */
async function run(options: BenchOptions, cleanup: Cleanup, interrupted: () => boolean): Promise<void> {
  const startedAt = new Date();
  const deadline = Date.now() + options.runBudgetMs;
  // Measured before anything of ours runs: on a shared machine, the reader must know what else ran.
  const machineBusyBefore = await machineBusyPct(1_000);
  const workDir = await makeWorkDir(cleanup);
  const gatewayCli = options.compiled
    ? { script: await compileGateway(path.join(workDir, 'gateway-build')), tsx: false }
    : { script: path.join(REPO_ROOT, 'src/cli.ts'), tsx: true };
  // Logs kept by an earlier run would be read as this run's.
  await rm(path.join(path.dirname(options.resultsFile), 'logs'), { recursive: true, force: true });
  const profileDir = options.profile ? path.join(path.dirname(options.resultsFile), 'profiles') : null;
  if (profileDir !== null) await mkdir(profileDir, { recursive: true });
  const ctx: StartContext = { cleanup, workDir, postgresUrl: options.postgresUrl, gatewayLogLevel: options.gatewayLogLevel, gatewayCli, profileDir };

  progress(`bench: ${options.quick ? 'quick run' : 'full run'}, targets ${options.targets.join(', ')}; logs in ${workDir}`);
  const driver = await LoadDriver.start(cleanup);
  const hashedSizes = [options.small.size, ...options.transfers.map((t) => t.size)];
  progress(`bench: hashing body prefixes for hex SHA-256 mode (${hashedSizes.map(sizeLabel).join(', ')}) before timing`);
  await driver.run({ kind: 'prepare', sizes: hashedSizes }, 120_000);

  const nullS3 = await startNullS3(ctx);
  const targets = await startTargets(options, ctx, nullS3);
  const results: Record<string, TargetResults> = {};
  let aborted: string | undefined;

  for (const name of options.targets) {
    if (interrupted()) return;
    const target = targets.get(name)!;
    if (target instanceof Error) {
      progress(`bench: ${name}: n/a (${reasonOf(target)})`);
      results[name] = { name, na: reasonOf(target), phases: {} };
      continue;
    }
    if (aborted !== undefined) {
      results[name] = { name, url: target.endpoint.url, na: aborted, phases: {} };
      continue;
    }
    progress(`bench: ${name} at ${target.endpoint.url} (pid ${target.pid})`);
    const idleRssBytes = rssBytes(target.pid);
    const sampler = new RssSampler(target.pid, 200);
    sampler.start();
    const scenario = { options, driver, backendPid: name === 'gateway-fs' || name === 'null-s3' ? undefined : nullS3.pid, deadline, tag: `${startedAt.getTime()}/${name}` };
    try {
      results[name] = { name, url: target.endpoint.url, phases: await runTargetPhases(scenario, target, progress) };
    } catch (error) {
      if (!(error instanceof RunAborted)) throw error;
      aborted = `run stopped: ${reasonOf(error)}`;
      progress(`bench: ${name}: ${aborted}`);
      results[name] = { name, url: target.endpoint.url, na: aborted, phases: {} };
    }
    results[name]!.idleRssBytes = idleRssBytes;
    results[name]!.peakRssBytes = Math.max(peakRssBytes(target.pid) ?? 0, sampler.stop()) || null;
    // Stop the target once measured (not the null endpoint, which later targets use), so an idle
    // gateway's timers do not run during another target's phases.
    if (target !== nullS3) await target.service.stop(8_000);
    const kept = await keepProblemLines(target.service.logFile, path.join(path.dirname(options.resultsFile), 'logs', `${name}.log`));
    if (kept > 0) progress(`bench: ${name}: ${kept} warning/error log lines kept in bench/results/logs/${name}.log`);
  }

  if (interrupted()) return;
  const checks = evaluateChecks(options, results);
  const meta = {
    date: startedAt.toISOString(),
    node: process.version,
    cpus: String(os.cpus().length),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    platform: `${os.platform()} ${os.release()}`,
    postgres: await postgresVersion(options.postgresUrl),
    durationSeconds: ((Date.now() - startedAt.getTime()) / 1000).toFixed(1),
    ...(machineBusyBefore === null ? {} : { machineBusyBeforePct: machineBusyBefore.toFixed(0) }),
  };
  const report = renderReport(options, results, checks, meta);
  process.stdout.write(`\n${report}\n`);

  await mkdir(path.dirname(options.resultsFile), { recursive: true });
  const json = {
    meta,
    options: {
      quick: options.quick,
      gateway: options.compiled ? 'transpiled src/ (--compiled)' : 'node --import tsx src/cli.ts',
      profiled: options.profile,
      targets: options.targets,
      gatewayLogLevel: options.gatewayLogLevel,
      small: options.small,
      transfers: options.transfers,
      concurrentUploads: options.concurrentUploads,
      multipart: options.multipart,
    },
    results,
    checks,
  };
  await writeFile(options.resultsFile, `${JSON.stringify(json, null, 2)}\n`);
  progress(`bench: results written to ${path.relative(process.cwd(), options.resultsFile)} in ${meta.durationSeconds} s`);
  if (profileDir !== null) progress(`bench: gateway CPU profiles in ${path.relative(process.cwd(), profileDir)} (Chrome DevTools > Performance, or speedscope)`);
}

async function main(): Promise<void> {
  let options: BenchOptions | 'help';
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    progress(`bench: ${signal}: stopping everything it started`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await run(options, cleanup, () => interrupted);
  } catch (error) {
    if (interrupted) return;
    process.exitCode = 1;
    progress(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    if (!interrupted) await cleanup.run();
  }
}

await main();
