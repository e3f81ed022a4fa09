// The seed usage APIs meterd speaks besides its own, one folder each.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { killBillErrorHandler } from './killbill/killbill.errors.js';
import { kindeErrorHandler } from './kinde/kinde.errors.js';
import { frontierErrorHandler } from './frontier/frontier.errors.js';
import { planshipErrorHandler } from './planship/planship.errors.js';
import { chartHopErrorHandler } from './charthop/charthop.errors.js';
import type { Command } from 'commander';
import type { Services } from '../main.js';
import * as killbill from './killbill/index.js';
import * as kinde from './kinde/index.js';
import * as frontier from './frontier/index.js';
import * as planship from './planship/index.js';
import * as charthop from './charthop/index.js';

const apis = [killbill, kinde, frontier, planship, charthop];

export const compatPlugins: Array<(app: FastifyInstance, s: Services) => Promise<void>> = apis.map((a) => a.register);

export function registerCompatCli(program: Command) {
  for (const a of apis) a.registerCli(program);
}

type ErrorWriter = (err: unknown, request: FastifyRequest, reply: FastifyReply) => unknown;

/** Each seed API's error writer by URL prefix (most specific first), for a URL the router cannot read. */
const errorWriters: Array<[string, ErrorWriter]> = [
  ['/1.0/kb/', killBillErrorHandler],
  ['/api/v1/billing/', kindeErrorHandler],
  ['/v1beta1/', frontierErrorHandler],
  ['/api/v1/', planshipErrorHandler],
  ['/v1/org/', chartHopErrorHandler],
];

export function compatErrorWriter(url: string): ErrorWriter | undefined {
  return errorWriters.find(([prefix]) => url.startsWith(prefix))?.[1];
}
