// OAuth client credentials for the Kinde API. A client is a meterd API key (client_id = key id,
// client_secret = its secret part). Access tokens are HS256 JWTs, expiring and scoped, signed with
// a key derived from the server's METERD_TOKEN_SECRET and that API key's hash: they die with the key.
import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify } from 'jose';
import type { Ctx } from '../../core/context.js';
import type { Services } from '../../main.js';
import type { ApiKeyRecord } from '../../modules/api-keys/api-keys.types.js';
import { OAuthError, invalidCredentials } from './kinde.errors.js';

export const ISSUER = 'urn:meterd:kinde';
/** Always in `aud`; the audience a client asks for is added so its token cache recognises it. */
export const API_AUDIENCE = 'urn:meterd:kinde:management-api';
export const METER_USAGE_SCOPE = 'create:meter_usage';
export const TOKEN_TTL_SECONDS = 3600;

export interface TokenRequest {
  grant_type?: string;
  client_id?: string;
  client_secret?: string;
  scope?: string;
  audience?: string;
  /** The Authorization header, for client_secret_basic. */
  authorization?: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

/** application/x-www-form-urlencoded decoding of one value; undefined when its percent-escapes are invalid. */
function formDecode(v: string): string | undefined {
  try {
    return decodeURIComponent(v.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

const scopesOf = (key: ApiKeyRecord) => (key.scopes.includes('ingest') || key.scopes.includes('admin') ? [METER_USAGE_SCOPE] : []);

export class KindeTokens {
  constructor(private readonly s: Services) {}

  async issue(req: TokenRequest): Promise<TokenResponse> {
    if (req.grant_type !== 'client_credentials') throw new OAuthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
    let { client_id: id, client_secret: secret } = req;
    const basic = /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(req.authorization ?? '');
    if (basic && !id) {
      const text = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = text.indexOf(':');
      // client_secret_basic form-encodes both parts (RFC 6749 §2.3.1); a bad escape is a bad credential.
      if (colon > 0) [id, secret] = [formDecode(text.slice(0, colon)), formDecode(text.slice(colon + 1))];
    }
    if (!id || !secret) throw new OAuthError(401, 'invalid_client', 'client_id and client_secret are required');
    let key: ApiKeyRecord;
    try {
      key = await this.s.apiKeys.authenticate(`mk_${id}_${secret}`);
    } catch {
      throw new OAuthError(401, 'invalid_client', 'unknown client or wrong secret');
    }
    const allowed = scopesOf(key);
    const asked = (req.scope ?? '').split(' ').filter(Boolean);
    const denied = asked.filter((s) => !allowed.includes(s));
    if (denied.length > 0) throw new OAuthError(400, 'invalid_scope', `this client may not have: ${denied.join(' ')}`);
    const scope = asked.length > 0 ? asked : allowed;
    const aud = [API_AUDIENCE];
    if (typeof req.audience === 'string' && req.audience.length <= 512 && /^https?:\/\/\S+$/.test(req.audience)) aud.push(req.audience);
    const token = await new SignJWT({ scope: scope.join(' '), scp: scope, tid: key.tenantId, gty: ['client_credentials'], azp: key.id })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: key.id })
      .setIssuer(ISSUER)
      .setSubject(key.id)
      .setAudience(aud)
      .setIssuedAt()
      .setJti(randomUUID())
      .setExpirationTime(`${TOKEN_TTL_SECONDS}s`)
      .sign(this.s.apiKeys.tokenSigningKey(key, 'kinde access token v1'));
    return { access_token: token, token_type: 'bearer', expires_in: TOKEN_TTL_SECONDS, scope: scope.join(' ') };
  }

  /** Checks a bearer token and its scope; every failure is Kinde's 403. */
  async verify(token: string | undefined, scope: string): Promise<Ctx & { clientId: string }> {
    if (!token) throw invalidCredentials('send an access token from POST /oauth2/token as "Authorization: Bearer <token>"');
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw invalidCredentials('the access token is not a JWT');
    }
    const key = kid && /^[A-Za-z0-9]{1,64}$/.test(kid) ? await this.s.store.getApiKey(kid) : undefined;
    if (!key || key.revokedAt !== null) throw invalidCredentials('the access token\'s client does not exist or was revoked');
    let claims: Record<string, unknown>;
    try {
      claims = (await jwtVerify(token, this.s.apiKeys.tokenSigningKey(key, 'kinde access token v1'), { issuer: ISSUER, audience: API_AUDIENCE, algorithms: ['HS256'], clockTolerance: 5 })).payload;
    } catch (e) {
      throw invalidCredentials(`invalid access token: ${(e as Error).message}`);
    }
    if (claims.tid !== key.tenantId || claims.sub !== key.id) throw invalidCredentials('invalid access token');
    if (typeof claims.scope !== 'string' || !claims.scope.split(' ').includes(scope)) throw invalidCredentials(`the access token lacks the ${scope} scope`);
    return { tenantId: key.tenantId, actor: `key:${key.id}`, scopes: key.scopes, clientId: key.id };
  }
}
