// Compiled meters per tenant, reloaded when the store says they changed (StaleMetersError)
// or when this process changed them. Stale caches are caught inside the append transaction.
import type { Store } from '../../store/store.js';
import { MeterSet } from './meter-eval.js';

export class MeterCache {
  private readonly sets = new Map<string, Promise<MeterSet>>();

  constructor(private readonly store: Store) {}

  get(tenantId: string): Promise<MeterSet> {
    let p = this.sets.get(tenantId);
    if (!p) {
      p = this.store.listMeters(tenantId).then(({ version, meters }) => new MeterSet(version, meters));
      p.catch(() => this.sets.delete(tenantId));
      this.sets.set(tenantId, p);
    }
    return p;
  }

  invalidate(tenantId: string) {
    this.sets.delete(tenantId);
  }
}
