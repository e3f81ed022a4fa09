// Request validation: bodies are checked strictly (a string is never turned into an array),
// URL parts are coerced from text ("?limit=10" is a number, a single value fits an array).
import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function make(opts: Options): Ajv {
  const ajv = new Ajv({ allErrors: true, removeAdditional: false, useDefaults: true, strict: false, ...opts });
  addFormats(ajv);
  return ajv;
}

const bodies = make({ coerceTypes: false });
const urlParts = make({ coerceTypes: 'array' });

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? bodies : urlParts).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
