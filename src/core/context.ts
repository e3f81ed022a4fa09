export type Scope = 'ingest' | 'read' | 'admin';
export const SCOPES: readonly Scope[] = ['ingest', 'read', 'admin'];

/** Who is calling, for which tenant. Every service function takes one. */
export interface Ctx {
  tenantId: string;
  /** API key id, or a system actor such as "cli" or "compat:killbill". Never a secret. */
  actor: string;
  scopes: readonly Scope[];
}

export const systemCtx = (tenantId: string, actor = 'system'): Ctx => ({ tenantId, actor, scopes: ['admin'] });
