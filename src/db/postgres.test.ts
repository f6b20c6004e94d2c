import { describe, expect, it } from 'vitest';
import { DB_UNAVAILABLE } from './db.js';
import { classifyDbError } from './postgres.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('classifyDbError', () => {
  it.each([
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['a reset connection', withCode('read ECONNRESET', 'ECONNRESET')],
    ['the server shutting down (admin_shutdown)', withCode('terminating connection due to administrator command', '57P01')],
    ['the server starting up (cannot_connect_now)', withCode('the database system is starting up', '57P03')],
    ['a connection failure (class 08)', withCode('connection failure', '08006')],
    ['a connection lost mid-query', new Error('Connection terminated unexpectedly')],
    ['a pool that could not connect in time', new Error('timeout exceeded when trying to connect')],
    ['a statement without an answer', new Error('Query read timeout')],
  ])('gives %s the code DB_UNAVAILABLE, keeping the original as the cause', (_what, error) => {
    const classified = classifyDbError(error) as Error & { code: string };
    expect(classified.code).toBe(DB_UNAVAILABLE);
    expect(classified.cause).toBe(error);
  });

  it.each([
    ['a unique violation', withCode('duplicate key value', '23505')],
    ['a statement timeout (the server answered)', withCode('canceling statement due to statement timeout', '57014')],
    ['too many connections', withCode('sorry, too many clients already', '53300')],
    ['an error without a code', new Error('something else')],
  ])('leaves %s as it is', (_what, error) => {
    expect(classifyDbError(error)).toBe(error);
  });
});
