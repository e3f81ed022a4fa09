// Planship's OAuth2 client credentials on meterd API keys: client id = key id, client secret = the
// key's secret. The token endpoint answers a signed HS256 JWT (audience "planship", 1 hour) whose
// signing key mixes METERD_TOKEN_SECRET with the key's hash, so revoking the key kills its tokens at once.
import { SignJWT, decodeProtectedHeader, jwtVerify } from 'jose';
import type { Ctx, Scope } from '../../core/context.js';
import { parseKey } from '../../modules/api-keys/api-keys.service.js';
import type { ApiKeyRecord } from '../../modules/api-keys/api-keys.types.js';
import type { Services } from '../../main.js';
import { forbidden, unauthorized } from './planship.errors.js';

export const TOKEN_TTL_SECONDS = 3600;
const ISSUER = 'meterd';
const AUDIENCE = 'planship';


export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
}

export class PlanshipAuth {
  constructor(private readonly s: Services) {}

  /** POST /api/v1/auth/token: Basic base64(client_id:client_secret), no body. */
  async issue(authorization: string | undefined): Promise<TokenResponse> {
    const m = /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(authorization ?? '');
    if (!m) throw unauthorized('Client credentials are required (HTTP Basic)');
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const id = decoded.slice(0, Math.max(colon, 0)).replace(/^mk_/, ''), secret = decoded.slice(colon + 1);
    const key = parseKey(secret) ? secret : `mk_${id}_${secret}`;
    const record = await this.s.apiKeys.authenticate(key).catch(() => {
      throw unauthorized('Incorrect client credentials');
    });
    const token = await new SignJWT({ tid: record.tenantId, scope: record.scopes.join(' ') })
      .setProtectedHeader({ alg: 'HS256', kid: record.id, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(record.id)
      .setIssuedAt()
      .setExpirationTime(`${TOKEN_TTL_SECONDS}s`)
      .sign(this.s.apiKeys.tokenSigningKey(record, 'planship token v1'));
    return { access_token: token, token_type: 'bearer', expires_in: TOKEN_TTL_SECONDS };
  }

  /** Bearer <token from issue()> or Bearer <meterd API key>; the key must hold `scope` now and in the token. */
  async verify(authorization: string | undefined, scope: Scope): Promise<Ctx> {
    const m = /^Bearer\s+(\S{1,4096})\s*$/i.exec(authorization ?? '');
    if (!m) throw unauthorized('Not authenticated');
    const token = m[1];
    let record: ApiKeyRecord;
    let granted: string[];
    if (parseKey(token)) {
      record = await this.s.apiKeys.authenticate(token).catch(() => {
        throw unauthorized();
      });
      granted = record.scopes;
    } else {
      let kid: string | undefined;
      try {
        kid = decodeProtectedHeader(token).kid;
      } catch {
        throw unauthorized();
      }
      const found = kid ? await this.s.store.getApiKey(kid) : undefined;
      if (!found || found.revokedAt !== null) throw unauthorized();
      record = found;
      try {
        const { payload } = await jwtVerify(token, this.s.apiKeys.tokenSigningKey(record, 'planship token v1'), { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] });
        if (payload.tid !== record.tenantId || payload.sub !== record.id) throw unauthorized();
        granted = String(payload.scope ?? '').split(' ').filter((x) => record.scopes.includes(x as Scope));
      } catch {
        throw unauthorized();
      }
    }
    if (!granted.includes(scope) && !granted.includes('admin')) throw forbidden(`These credentials lack the "${scope}" scope`);
    return { tenantId: record.tenantId, actor: `key:${record.id}`, scopes: granted as Scope[] };
  }
}
