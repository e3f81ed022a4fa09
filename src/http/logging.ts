// Structured JSON logs (pino). Request logs carry the request id, never credentials.
import type { Config } from '../config.js';

export function loggerOptions(config: Config) {
  return {
    level: config.LOG_LEVEL,
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-killbill-apisecret"]', 'req.headers.cookie', '*.password', '*.secret', '*.key', '*.client_secret'],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { method: string; url: string; id: string }) => ({ method: req.method, url: req.url.split('?')[0], id: req.id }),
    },
  };
}
