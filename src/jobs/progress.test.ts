import { describe, expect, it } from 'vitest';
import { createProgress } from './progress.js';

function sink() {
  let text = '';
  return { out: { write: (chunk: string) => (text += chunk) }, text: () => text };
}

describe('createProgress', () => {
  it('prints plain lines off a terminal: at the start, every few seconds, and at the end of each phase', () => {
    const { out, text } = sink();
    let now = 0;
    const progress = createProgress(out, 'gc', { tty: false, lineEveryMs: 1000, clock: () => now });
    progress.phase('blobs', 3);
    progress.advance();
    now = 1500;
    progress.advance();
    progress.phase('uploads');
    progress.advance(5);
    progress.done();
    expect(text()).toBe('gc: blobs (3)\ngc: blobs 2/3\ngc: blobs 2/3 done\ngc: uploads\ngc: uploads 5 done\n');
  });

  it('redraws one bar line on a terminal and ends it with a newline', () => {
    const { out, text } = sink();
    let now = 0;
    const progress = createProgress({ ...out, columns: 80 }, 'purge', { tty: true, clock: () => now });
    progress.phase('accounts', 4);
    now = 200;
    progress.advance(2);
    progress.done();
    const frames = text().split('\r\x1b[2K').filter(Boolean);
    expect(frames.at(-2)).toMatch(/^purge: accounts \[#+-+\]  50% 2\/4$/);
    expect(frames.at(-1)).toMatch(/^purge: accounts \[#+-+\]  50% 2\/4\n$/);
    expect(text().split('\n')).toHaveLength(2);
  });
});
