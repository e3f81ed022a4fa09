// API keys verified in the last second, so a busy client costs one digest and a map read per
// request instead of a store read and a hash compare. Entries are found by a sha256 of the whole
// presented key (never the key itself). The short life bounds how long a key revoked on another
// instance keeps working here; a revocation through this instance evicts at once.
import { hash } from 'node:crypto';
import type { ApiKeyRecord } from './api-keys.types.js';

interface Entry {
  record: ApiKeyRecord;
  expiresAt: number;
}

export const presentedKeyDigest = (presented: string): string => hash('sha256', presented, 'base64url');

export class VerifiedKeys {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by every eviction, so a verification that was under way meanwhile is not cached. */
  private evictions = 0;

  constructor(
    private readonly ttlMs = 1000,
    private readonly maxEntries = 10_000,
  ) {}

  get(digest: string, now: number): ApiKeyRecord | undefined {
    const e = this.entries.get(digest);
    if (!e) return undefined;
    if (e.expiresAt > now) return e.record;
    this.entries.delete(digest);
    return undefined;
  }

  /** A marker to hand back to set(): the cache refuses records read before a later eviction. */
  epoch(): number {
    return this.evictions;
  }

  set(digest: string, record: ApiKeyRecord, now: number, epoch: number): void {
    if (epoch !== this.evictions) return;
    this.entries.delete(digest);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    // Requests share the record: freeze it so none can change what the next one sees.
    Object.freeze(record.scopes);
    this.entries.set(digest, { record: Object.freeze(record), expiresAt: now + this.ttlMs });
  }

  evict(keyId: string): void {
    this.evictions++;
    for (const [digest, e] of this.entries) if (e.record.id === keyId) this.entries.delete(digest);
  }
}
