// API keys: "mk_<id>_<secret>". The id finds the row; only sha256(secret) is stored and it is
// compared in constant time. The full key is shown once, at creation.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Ctx, Scope } from '../../core/context.js';
import { notFound, unauthenticated } from '../../core/errors.js';
import type { Store } from '../../store/store.js';
import type { ApiKeyRecord } from './api-keys.types.js';
import { VerifiedKeys, presentedKeyDigest } from './verified-keys.js';

const KEY_PATTERN = /^mk_([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

export interface CreatedKey {
  key: string;
  record: ApiKeyRecord;
}

export const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

function randomId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(16);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

/** Splits a presented key; undefined when it is not shaped like one of ours. */
export function parseKey(key: string): { id: string; secret: string } | undefined {
  const m = KEY_PATTERN.exec(key);
  return m ? { id: m[1], secret: m[2] } : undefined;
}

/** The part of a key that is safe to log or show: its id. */
export const keyLabel = (key: string) => splitAnyKey(key).id;

export class ApiKeysService {
  private readonly tokenSecret: Buffer;
  private readonly verified = new VerifiedKeys();

  /** `tokenSecret` (METERD_TOKEN_SECRET) signs the OAuth tokens of the seed APIs; without it, a per-process secret. */
  constructor(
    private readonly store: Store,
    tokenSecret?: string,
  ) {
    this.tokenSecret = tokenSecret ? Buffer.from(tokenSecret) : randomBytes(32);
  }

  /**
   * The key that signs access tokens issued to this API key's holder for one purpose. It mixes the
   * server's secret (so reading the database is not enough to mint tokens) with the key's hash (so
   * revoking or replacing the key kills its tokens).
   */
  tokenSigningKey(record: ApiKeyRecord, purpose: string): Uint8Array {
    return createHmac('sha256', this.tokenSecret).update(purpose).update('\u0000').update(record.secretHash).digest();
  }

  async create(tenantId: string, name: string, scopes: Scope[]): Promise<CreatedKey> {
    const id = randomId();
    const secret = randomBytes(32).toString('base64url');
    const record: ApiKeyRecord = { id, tenantId, name, secretHash: hashSecret(secret), scopes, createdAt: Date.now(), revokedAt: null };
    // 16 random characters: a taken id means something is badly wrong, not bad luck.
    if (!(await this.store.insertApiKey(record))) throw new Error(`API key id ${id} exists already`);
    return { key: `mk_${id}_${secret}`, record };
  }

  /**
   * Seeds a key chosen by the operator (METERD_ADMIN_KEY). Any string of 16+ characters works;
   * one in meterd's own format keeps its id. Idempotent across restarts.
   */
  async seed(tenantId: string, name: string, scopes: Scope[], key: string): Promise<ApiKeyRecord> {
    const { id, secret } = splitAnyKey(key);
    const existing = await this.store.getApiKey(id);
    if (existing) return existing;
    const record: ApiKeyRecord = { id, tenantId, name, secretHash: hashSecret(secret), scopes, createdAt: Date.now(), revokedAt: null };
    // Instances starting together all seed it: one writes it, the others read what it wrote.
    if (await this.store.insertApiKey(record)) return record;
    return (await this.store.getApiKey(id))!;
  }

  /** Resolves a bearer key to its record, or throws unauthenticated. Successes are remembered for a second. */
  async authenticate(presented: string): Promise<ApiKeyRecord> {
    const digest = presentedKeyDigest(presented);
    const now = Date.now();
    const known = this.verified.get(digest, now);
    if (known) return known;
    const epoch = this.verified.epoch();
    const record = await this.verify(presented);
    this.verified.set(digest, record, now, epoch);
    return record;
  }

  /** Checks a key against the store. Constant-time on the secret. */
  private async verify(presented: string): Promise<ApiKeyRecord> {
    const { id, secret } = splitAnyKey(presented);
    const record = await this.store.getApiKey(id);
    const expected = Buffer.from(record?.secretHash ?? '0'.repeat(64), 'hex');
    const actual = Buffer.from(hashSecret(secret), 'hex');
    const match = timingSafeEqual(expected, actual);
    if (!record || !match) throw unauthenticated();
    if (record.revokedAt !== null) throw unauthenticated('API key has been revoked');
    return record;
  }

  list(ctx: Ctx) {
    return this.store.listApiKeys(ctx.tenantId);
  }

  async revoke(ctx: Ctx, id: string): Promise<void> {
    const revoked = await this.store.revokeApiKey(ctx.tenantId, id, Date.now());
    this.verified.evict(id);
    if (!revoked) throw notFound('API key');
  }
}

/** Keys not in meterd's format (operator-chosen) are identified by a digest of the whole key. */
function splitAnyKey(key: string): { id: string; secret: string } {
  return parseKey(key) ?? { id: `x${hashSecret(`id:${key}`).slice(0, 15)}`, secret: key };
}
