/**
 * How a job reports how far it has come. On a terminal `jettythunder jobs run` redraws one bar line;
 * anywhere else (a pipe, a log file, CI) it prints a plain line when a phase starts, every few seconds
 * while it runs, and when it ends. Scheduled runs report nowhere.
 */
export interface Progress {
  /** Starts a phase: what is counted and, when known beforehand, how many there are. */
  phase(label: string, total?: number): void;
  /** Counts `n` more items done in the current phase. */
  advance(n?: number): void;
  /** Ends the current phase. */
  done(): void;
}

export const silentProgress: Progress = { phase() {}, advance() {}, done() {} };

interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Draw a bar; defaults to whether `out` is a terminal. */
  tty?: boolean;
  /** Milliseconds between plain lines while a phase runs. */
  lineEveryMs?: number;
  clock?: () => number;
}

const BAR_REDRAW_MS = 100;

function counted(done: number, total: number | undefined): string {
  return total === undefined ? `${done}` : `${done}/${total}`;
}

export function createProgress(out: Output, job: string, options: ProgressOptions = {}): Progress {
  const tty = options.tty ?? out.isTTY === true;
  const clock = options.clock ?? Date.now;
  const lineEveryMs = options.lineEveryMs ?? 5_000;
  let label: string | null = null;
  let total: number | undefined;
  let done = 0;
  let lastDrawn = 0;

  const bar = (): string => {
    const head = `${job}: ${label} `;
    if (total === undefined || total === 0) return `${head}${done}`;
    const share = Math.min(done / total, 1);
    const width = Math.max(10, Math.min(40, (out.columns ?? 80) - head.length - 20));
    const filled = Math.round(share * width);
    return `${head}[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(share * 100)).padStart(3)}% ${counted(done, total)}`;
  };

  const draw = (force: boolean) => {
    const now = clock();
    if (!force && now - lastDrawn < (tty ? BAR_REDRAW_MS : lineEveryMs)) return;
    lastDrawn = now;
    // \x1b[2K clears the line, so a shorter redraw leaves nothing of the longer one behind.
    out.write(tty ? `\r\x1b[2K${bar()}` : `${job}: ${label} ${counted(done, total)}\n`);
  };

  const end = () => {
    if (label === null) return;
    if (tty) out.write(`\r\x1b[2K${bar()}\n`);
    else out.write(`${job}: ${label} ${counted(done, total)} done\n`);
    label = null;
  };

  return {
    phase(next, expected) {
      end();
      label = next;
      total = expected;
      done = 0;
      lastDrawn = clock();
      if (tty) out.write(`\r\x1b[2K${bar()}`);
      else out.write(`${job}: ${label}${total === undefined ? '' : ` (${total})`}\n`);
    },
    advance(n = 1) {
      if (label === null) return;
      done += n;
      draw(false);
    },
    done: end,
  };
}
