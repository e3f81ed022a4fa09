// Numbered, append-only schema migrations. Each engine supplies its SQL per version.
export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string;
}

/**
 * A database a newer meterd migrated: this one does not know its schema (migration 10 on PostgreSQL
 * rekeyed the rollup tables, and an older process reading them failed every usage query), so it must
 * not run on it, nor take migrations down it does not know.
 */
export class SchemaTooNewError extends Error {
  constructor(readonly version: number, readonly known: number) {
    super(`the database's schema is at version ${version}, newer than this meterd knows (${known}): run a meterd at least as new as the one that migrated it`);
    this.name = 'SchemaTooNewError';
  }
}

/** Throws SchemaTooNewError when `applied` holds a version past every migration in `known`. */
export function refuseNewerSchema(applied: Iterable<number>, known: Migration[]): void {
  const latest = Math.max(0, ...known.map((m) => m.version));
  const newest = Math.max(0, ...applied);
  if (newest > latest) throw new SchemaTooNewError(newest, latest);
}
