import type { FastifyInstance } from 'fastify';
import { bearerToken, secretsEqual } from '../../auth/constant-time.js';
import type { AccountStatus } from '../../auth/key-store.js';
import { HttpError } from '../../http-errors.js';
import {
  changeTier,
  getAccount,
  listAccounts,
  markDeleted,
  provision,
  reactivate,
  rotateSecret,
  setOverrides,
  suspend,
  type AccountDeps,
  type AccountRef,
  type ChangeTierInput,
  type OverridesInput,
  type ProvisionInput,
} from '../accounts.js';
import * as schemas from './schemas.js';

const security = [{ adminBearer: [] }];
const tags = ['accounts'];

/** AgentCache's management of storage accounts, under /api/agentcache, all behind the admin bearer. */
export async function accountRoutes(app: FastifyInstance, options: { deps: AccountDeps }): Promise<void> {
  const { deps } = options;

  // onRequest runs before the body is read: an unauthenticated caller learns nothing about validation.
  app.addHook('onRequest', async (request) => {
    const token = bearerToken(request.headers.authorization);
    // One answer for every failure, with no hint whether the header was missing or wrong.
    if (token === null || !secretsEqual(token, deps.config.adminSecret)) throw new HttpError(401, 'UNAUTHORIZED', 'Unauthorized');
  });

  app.post<{ Body: ProvisionInput }>(
    '/provision',
    {
      schema: {
        tags,
        security,
        summary: 'Create a storage account for an AgentCache user',
        description:
          'Returns the account with its api_key and api_secret; the secret is never shown again (rotate to get a new one). ' +
          'A second provision of the same agentcache_user_id answers 409 with the existing account_id.',
        body: schemas.provisionBody,
        response: { 201: schemas.provisionResponse, ...schemas.errors(400, 401, 409, 413) },
      },
    },
    async (request, reply) => reply.code(201).send(await provision(deps, request.body)),
  );

  app.post<{ Body: ChangeTierInput }>(
    '/upgrade',
    {
      schema: {
        tags,
        security,
        summary: "Change an account's tier (up or down)",
        body: schemas.upgradeBody,
        response: { 200: schemas.upgradeResponse, ...schemas.errors(400, 401, 404, 409) },
      },
    },
    async (request) => changeTier(deps, request.body),
  );

  app.post<{ Body: AccountRef }>(
    '/suspend',
    {
      schema: {
        tags,
        security,
        summary: "Refuse the account's keys on every request; its data stays",
        body: schemas.accountRefBody,
        response: { 200: schemas.statusResponse, ...schemas.errors(400, 401, 404, 409) },
      },
    },
    async (request) => suspend(deps, request.body),
  );

  app.post<{ Body: AccountRef }>(
    '/reactivate',
    {
      schema: {
        tags,
        security,
        summary: 'Restore a suspended account',
        body: schemas.accountRefBody,
        response: { 200: schemas.statusResponse, ...schemas.errors(400, 401, 404, 409) },
      },
    },
    async (request) => reactivate(deps, request.body),
  );

  app.post<{ Body: AccountRef }>(
    '/delete',
    {
      schema: {
        tags,
        security,
        summary: 'Delete an account: its keys stop at once, and its objects and rows are purged',
        description: 'Answers 202 with the purge state (pending, running, done). Repeating the call is harmless and resumes an unfinished purge.',
        body: schemas.accountRefBody,
        response: { 202: schemas.deleteResponse, ...schemas.errors(400, 401, 404) },
      },
    },
    async (request, reply) => reply.code(202).send(await markDeleted(deps, request.body)),
  );

  app.post<{ Body: AccountRef }>(
    '/rotate',
    {
      schema: {
        tags,
        security,
        summary: 'Issue a new secret; the previous one works until previous_secret_expires_at',
        body: schemas.accountRefBody,
        response: { 200: schemas.rotateResponse, ...schemas.errors(400, 401, 404, 409) },
      },
    },
    async (request) => rotateSecret(deps, request.body),
  );

  app.post<{ Body: OverridesInput }>(
    '/overrides',
    {
      schema: {
        tags,
        security,
        summary: "Set per-account limits in place of the tier's",
        description: "A number replaces the tier's figure, null returns to it, an absent field is left as it is.",
        body: schemas.overridesBody,
        response: { 200: schemas.overridesResponse, ...schemas.errors(400, 401, 404, 409) },
      },
    },
    async (request) => setOverrides(deps, request.body),
  );

  app.get<{ Params: AccountRef }>(
    '/accounts/:agentcache_user_id',
    {
      schema: {
        tags,
        security,
        summary: 'An account: tier, status, limits in force, overrides and usage (never the secret)',
        params: schemas.accountRefBody,
        response: { 200: schemas.accountView, ...schemas.errors(400, 401, 404) },
      },
    },
    async (request) => getAccount(deps, request.params),
  );

  app.get<{ Querystring: { tier?: string; status?: AccountStatus; cursor?: string; limit?: number } }>(
    '/accounts',
    {
      schema: {
        tags,
        security,
        summary: 'Accounts in agentcache_user_id order, a page at a time, optionally of one tier or status',
        querystring: schemas.listQuery,
        response: { 200: schemas.listResponse, ...schemas.errors(400, 401) },
      },
    },
    async (request) => listAccounts(deps, request.query),
  );
}
