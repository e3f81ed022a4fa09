// The few parts of autocannon's programmatic API the load generator uses (the package ships no types).
declare module 'autocannon' {
  export interface Request {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    setupRequest?: (req: Request, context: Record<string, unknown>) => Request;
    onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
  }
  export interface Options {
    url: string | string[];
    connections?: number;
    duration?: number;
    overallRate?: number;
    timeout?: number;
    method?: string;
    headers?: Record<string, string>;
    requests?: Request[];
  }
  export interface Result {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    requests: { total: number; average: number };
    latency: { p50: number; p99: number };
  }
  export interface Instance {
    on(event: 'response', cb: (client: unknown, status: number, bytes: number, ms: number) => void): void;
    on(event: 'done', cb: (r: Result) => void): void;
    stop(): void;
  }
  function autocannon(opts: Options, cb: (err: Error | null, r: Result) => void): Instance;
  export default autocannon;
}
