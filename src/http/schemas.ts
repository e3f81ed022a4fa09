// Wire schemas shared by several routes.
import { Type } from 'typebox';

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)', additionalProperties: true },
);

const problemRef = { description: 'problem details', content: { 'application/problem+json': { schema: Type.Ref('Problem') } } };

/** Documented error answers for a route (the answers themselves come from src/http/problem.ts). */
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, problemRef]));

/** Stored free text: anything but NUL, which PostgreSQL text cannot hold (refused on SQLite too, so both engines answer alike). */
export const NO_NUL = '^[^\\u0000]*$';
export const Text = (options: { minLength?: number; maxLength: number; description?: string }) => Type.String({ ...options, pattern: NO_NUL });
/** Identifiers: no control characters. */
export const NO_CONTROL = '^[^\\u0000-\\u001f]+$';

export const Slug = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'lower-case letters, digits, - and _; at most 63' });
export const Key = Type.String({ minLength: 1, maxLength: 256, pattern: NO_CONTROL });
/** An identifier in a URL: no control characters (PostgreSQL text cannot even hold NUL). */
export const PathKey = Type.String({ minLength: 1, maxLength: 256, pattern: NO_CONTROL });
export const Timestamp = Type.String({ description: 'RFC 3339 date-time, UTC', format: 'date-time' });
