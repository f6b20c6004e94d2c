import path from 'node:path';
import { BENCH_DIR } from './processes.js';

export const TARGET_NAMES = ['null-s3', 'passthrough', 'gateway-s3', 'gateway-fs'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export interface BenchOptions {
  quick: boolean;
  /** Run the gateway transpiled to plain JS rather than through tsx (production's memory profile). */
  compiled: boolean;
  /** Write a V8 CPU profile of each gateway to bench/results/profiles/ (costs the gateway some CPU). */
  profile: boolean;
  targets: TargetName[];
  /** A PostgreSQL server where the bench may create and drop databases. */
  postgresUrl: string;
  /** The gateway's LOG_LEVEL; info (production's default) logs one line per request, which we pay for. */
  gatewayLogLevel: string;
  small: { size: number; concurrency: number; maxOps: number; maxMs: number; warmupOps: number; readKeys: number };
  /** Single-stream transfers, in the order run: the 64 MiB and 1 GiB. */
  transfers: { label: string; size: number; reps: number }[];
  concurrentUploads: { count: number; size: number };
  multipart: { size: number; partSize: number; parallel: number };
  /** The whole run stops starting phases after this long and reports the rest as n/a. */
  runBudgetMs: number;
  resultsFile: string;
}

export const USAGE = `Usage: npm run bench [-- options]

  --quick              small sizes and counts: a smoke run of about a minute
  --only=a,b           run only these targets: ${TARGET_NAMES.join(', ')}
  --compiled           run the gateway as plain JS transpiled from src/ (no tsx loader: production's RSS)
  --profile            write each gateway's V8 CPU profile to bench/results/profiles/ (adds CPU overhead)
  --small-seconds=N    time bound of each 4 KiB phase (default 10, quick 2)
  --help               this text

Environment:
  BENCH_POSTGRES_URL   server for the bench's throwaway databases (default postgres://postgres@127.0.0.1:5432/postgres)
  BENCH_LOG_LEVEL      the gateway's LOG_LEVEL (default info, as in production)

Results: a table on stdout and bench/results/latest.json.`;

export function sizeLabel(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}

function flagValue(argv: string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  return argv.find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  const known = ['--quick', '--compiled', '--profile', '--only=', '--small-seconds='];
  const unknown = argv.filter((arg) => !known.some((flag) => (flag.endsWith('=') ? arg.startsWith(flag) : arg === flag)));
  if (unknown.length > 0) throw new Error(`unknown option ${unknown.join(' ')}\n\n${USAGE}`);

  const quick = argv.includes('--quick') || env.BENCH_QUICK === '1';
  const only = flagValue(argv, 'only');
  const targets = only === undefined ? [...TARGET_NAMES] : only.split(',').map((name) => name.trim());
  for (const name of targets) {
    if (!(TARGET_NAMES as readonly string[]).includes(name)) throw new Error(`--only: unknown target "${name}" (known: ${TARGET_NAMES.join(', ')})`);
  }
  const smallSeconds = Number(flagValue(argv, 'small-seconds') ?? (quick ? 2 : 10));
  if (!(smallSeconds > 0 && smallSeconds <= 120)) throw new Error('--small-seconds must be from 1 to 120');

  const largeSize = quick ? 16 * MiB : GiB;
  return {
    quick,
    compiled: argv.includes('--compiled') || env.BENCH_COMPILED === '1',
    profile: argv.includes('--profile'),
    targets: targets as TargetName[],
    postgresUrl: env.BENCH_POSTGRES_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/postgres',
    gatewayLogLevel: env.BENCH_LOG_LEVEL?.trim() || 'info',
    small: {
      size: 4 * KiB,
      concurrency: 16,
      maxOps: quick ? 4_000 : 50_000,
      maxMs: smallSeconds * 1000,
      warmupOps: quick ? 200 : 1_000,
      readKeys: 1_000,
    },
    transfers: [
      { label: 'medium', size: quick ? 4 * MiB : 64 * MiB, reps: quick ? 2 : 4 },
      { label: 'large', size: largeSize, reps: quick ? 2 : 2 },
    ],
    concurrentUploads: { count: 8, size: largeSize },
    multipart: { size: quick ? 64 * MiB : GiB, partSize: 8 * MiB, parallel: 4 },
    // Quick: phases stop starting after 90 s, so with start-up and clean-up the run stays under 2 minutes.
    runBudgetMs: quick ? 90_000 : 40 * 60_000,
    resultsFile: path.join(BENCH_DIR, 'results', 'latest.json'),
  };
}
