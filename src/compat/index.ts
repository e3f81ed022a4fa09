// The seed usage APIs meterd speaks besides its own, one folder each.
import type { FastifyInstance } from 'fastify';
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
