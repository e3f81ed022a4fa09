import type { Scope } from '../../core/context.js';

/** An API key as stored: only a hash of its secret is kept. */
export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  name: string;
  /** sha256 of the secret part, hex. */
  secretHash: string;
  scopes: Scope[];
  createdAt: number;
  revokedAt: number | null;
}
