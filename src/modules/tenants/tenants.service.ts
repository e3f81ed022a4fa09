import { conflict, validationError } from '../../core/errors.js';
import type { Store } from '../../store/store.js';
import type { Tenant } from './tenants.types.js';

const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export class TenantsService {
  constructor(private readonly store: Store) {}

  async create(id: string, name = id): Promise<Tenant> {
    if (!TENANT_ID.test(id)) throw validationError('tenant ids are lower-case letters, digits, - and _ (at most 63)', [{ field: 'id', message: 'invalid tenant id' }]);
    const tenant = { id, name, createdAt: Date.now() };
    if (!(await this.store.createTenant(tenant))) throw conflict(`tenant "${id}" already exists`);
    return tenant;
  }

  /** Creates the tenant unless it exists. */
  async ensure(id: string, name = id): Promise<void> {
    await this.store.createTenant({ id, name, createdAt: Date.now() });
  }

  list(): Promise<Tenant[]> {
    return this.store.listTenants();
  }
}
