import type { Store } from '../../src/store/store.js';
import type { Database, EngineFixture } from './engines.js';

/** Filled in by the driver's before() hook; suites read it inside their tests. */
export interface Suite {
  engine: EngineFixture;
  db: Database;
  store: Store;
}
