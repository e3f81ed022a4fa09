// The baseline: Fastify, the same JSON parsing as meterd (string body, JSON.parse, 5 MB limit), the same
// receipt shape in the answer, and nothing stored. Run as its own process: PORT=… node --import tsx bench/baseline-server.ts
import Fastify from 'fastify';

const JSON_TYPES = ['application/json', 'application/cloudevents+json', 'application/cloudevents-batch+json'];

interface RawEvent { id?: unknown; source?: unknown }

async function main() {
  const port = Number(process.env.PORT ?? 0);
  const app = Fastify({ logger: false, bodyLimit: 5 * 1024 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (e) {
      done(Object.assign(new Error('the body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });
  app.post('/v1/events', async (req) => {
    const list = (Array.isArray(req.body) ? req.body : [req.body]) as RawEvent[];
    return {
      accepted: list.length,
      duplicate: 0,
      conflict: 0,
      rejected: 0,
      events: list.map((e) => ({ id: e.id, source: e.source, status: 'accepted' })),
    };
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  const address = await app.listen({ port, host: '127.0.0.1' });
  process.stdout.write(`listening ${address}\n`);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void app.close().then(() => process.exit(0)));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
