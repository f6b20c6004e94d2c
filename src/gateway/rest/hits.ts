import type { Queryable } from '../../db/index.js';
import type { WarnLogger } from '../../store/blobs.js';

/**
 * Counts downloads (hit_count, last_accessed) without making one wait: record() returns at once and the
 * UPDATE runs behind the response. Hits on an object whose UPDATE is still running are added up and
 * written by one more UPDATE after it, so a popular object costs at most one statement in flight, never
 * a queue of row locks. A failed write is logged and its hits dropped: they are statistics, not billing.
 */
export interface HitRecorder {
  record(objectId: string): void;
  /** Resolves once every recorded hit has been written (or given up): call before the database closes. */
  settled(): Promise<void>;
}

export function createHitRecorder(db: Queryable, logger: WarnLogger): HitRecorder {
  // Object id -> hits not yet written while a write for that object is in flight.
  const waiting = new Map<string, number>();
  const writing = new Map<string, Promise<void>>();

  function write(objectId: string, hits: number): void {
    const done = db
      .query('UPDATE agentcache_assets SET hit_count = hit_count + $2, last_accessed = greatest(last_accessed, now()) WHERE id = $1', [objectId, hits])
      .then(
        () => undefined,
        (error: unknown) => logger.warn({ err: error, objectId, hits }, 'could not record downloads of an object'),
      )
      .finally(() => {
        writing.delete(objectId);
        const more = waiting.get(objectId);
        if (more !== undefined) {
          waiting.delete(objectId);
          write(objectId, more);
        }
      });
    writing.set(objectId, done);
  }

  return {
    record(objectId) {
      if (writing.has(objectId)) waiting.set(objectId, (waiting.get(objectId) ?? 0) + 1);
      else write(objectId, 1);
    },
    async settled() {
      while (writing.size > 0) await Promise.all(writing.values());
    },
  };
}
