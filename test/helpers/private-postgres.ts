import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A PostgreSQL cluster of a test's own, on a free loopback port, that the test may stop and start at
 * will: the machine's shared server is never touched. Trust auth, user postgres, database postgres.
 */
export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  /** Whether the server was last started (true) or stopped (false). */
  readonly running: boolean;
  /** Starts the server again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server; `immediate` drops every connection at once, as a crash would. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server and removes its files. */
  destroy(): Promise<void>;
}

const POSTGRES_ROOT = '/usr/lib/postgresql';

/** Whether PostgreSQL's server programs are installed here (Debian keeps them under /usr/lib/postgresql/<major>). */
export const privatePostgresAvailable = existsSync(POSTGRES_ROOT) && readdirSync(POSTGRES_ROOT).some((name) => existsSync(path.join(POSTGRES_ROOT, name, 'bin', 'initdb')));

/** The newest installed PostgreSQL's bin folder. */
function postgresBinDir(): string {
  const root = POSTGRES_ROOT;
  const majors = readdirSync(root)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  if (majors.length === 0) throw new Error(`no PostgreSQL under ${root}`);
  return path.join(root, majors[0]!, 'bin');
}

/** A port nothing listens on now, on the loopback address. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** PostgreSQL refuses to run as root: as root, run its programs as the postgres user. */
async function runAsOwner(asPostgresUser: boolean, program: string, args: string[]): Promise<void> {
  const [file, argv] = asPostgresUser ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args];
  try {
    await run(file, argv, { timeout: 30_000 });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${path.basename(program)} ${args[0] ?? ''} failed: ${stderr || stdout || (error as Error).message}`);
  }
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const asPostgresUser = userInfo().uid === 0;
  const base = await mkdtemp(path.join(tmpdir(), 'jt-pg-'));
  const dataDir = path.join(base, 'data');
  const socketDir = path.join(base, 'socket');
  const logFile = path.join(base, 'server.log');
  await mkdir(socketDir);
  if (asPostgresUser) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    for (const dir of [base, socketDir]) await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const port = await freePort();
  const pgCtl = path.join(bin, 'pg_ctl');
  await runAsOwner(asPostgresUser, path.join(bin, 'initdb'), ['-D', dataDir, '--auth=trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  // fsync off: the files outlive an immediate stop through the OS cache, and the tests run faster.
  const serverOptions = `-k ${socketDir} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=60`;

  const start = () => runAsOwner(asPostgresUser, pgCtl, ['start', '-w', '-t', '30', '-D', dataDir, '-l', logFile, '-o', serverOptions]);
  const stop = (mode: 'fast' | 'immediate' = 'fast') => runAsOwner(asPostgresUser, pgCtl, ['stop', '-w', '-t', '30', '-D', dataDir, '-m', mode]);
  let running = false;
  await start();
  running = true;

  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    get running() {
      return running;
    },
    async start() {
      await start();
      running = true;
    },
    async stop(mode) {
      await stop(mode);
      running = false;
    },
    async destroy() {
      if (running) await stop('immediate').catch(() => undefined);
      running = false;
      await rm(base, { recursive: true, force: true });
    },
  };
}
