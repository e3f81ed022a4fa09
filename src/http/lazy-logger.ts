// Request loggers made on their first log line. pino's child() serialises its bindings up front,
// and every request got two (Fastify's, with the request id, and auth's, with tenant and key)
// while most requests log nothing at the usual levels. Same bindings, same lines, made later.
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, LevelWithSilent } from 'pino';

type Method = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type Writer = Record<Method, (...args: unknown[]) => void>;
/** What the root logger offers (pino does): asking for a level without writing. */
type Parent = FastifyBaseLogger & { isLevelEnabled?(level: string): boolean };

export class LazyChildLogger implements FastifyBaseLogger {
  private made?: FastifyBaseLogger;

  constructor(
    private readonly parent: Parent,
    private readonly bindings: Bindings,
    private readonly options?: ChildLoggerOptions,
  ) {}

  /** The real pino child, made now if it was not yet. */
  materialize(): FastifyBaseLogger {
    if (!this.made) {
      const parent = this.parent instanceof LazyChildLogger ? this.parent.materialize() : this.parent;
      this.made = parent.child(this.bindings, this.options);
    }
    return this.made;
  }

  isLevelEnabled(level: string): boolean {
    const target = (this.made ?? this.parent) as Parent;
    // A logger that cannot say is asked to write: it filters by itself.
    return target.isLevelEnabled ? target.isLevelEnabled(level) : true;
  }

  get level(): LevelWithSilent | string {
    return this.made?.level ?? this.parent.level;
  }

  set level(level: LevelWithSilent | string) {
    this.materialize().level = level;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return lazyChild(this, bindings, options);
  }

  fatal(...args: unknown[]) { this.write('fatal', args); }
  error(...args: unknown[]) { this.write('error', args); }
  warn(...args: unknown[]) { this.write('warn', args); }
  info(...args: unknown[]) { this.write('info', args); }
  debug(...args: unknown[]) { this.write('debug', args); }
  trace(...args: unknown[]) { this.write('trace', args); }
  silent() {}

  private write(method: Method, args: unknown[]): void {
    if (this.isLevelEnabled(method)) (this.materialize() as unknown as Writer)[method](...args);
  }
}

/** A child that is made on first use; one with its own level is made at once (its level decides what it writes). */
export function lazyChild(parent: FastifyBaseLogger, bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
  if (options?.level !== undefined) {
    return (parent instanceof LazyChildLogger ? parent.materialize() : parent).child(bindings, options);
  }
  return new LazyChildLogger(parent, bindings, options);
}
