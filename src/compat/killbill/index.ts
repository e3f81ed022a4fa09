// The killbill usage API on meterd (see ../../../README.md#killbill). Owner: the compat work of issue 4.
import type { FastifyInstance } from 'fastify';
import type { Command } from 'commander';
import type { Services } from '../../main.js';

export async function register(_app: FastifyInstance, _s: Services): Promise<void> {}

export function registerCli(_program: Command): void {}
