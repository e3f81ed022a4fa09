// Rollup rows name their meter by its series number (meters.series, migration 10), not by tenant and
// meter id as text: 4 bytes in every key instead of ~45.

/**
 * The series of meter $2 of tenant $1, for a statement's WHERE: every read of rollups still names the
 * tenant, so another tenant's meter id finds nothing. Evaluated once per statement (an InitPlan).
 */
export const SERIES_OF = '(SELECT series FROM meters WHERE tenant_id = $1 AND id = $2)';
export const WHERE_SERIES = `WHERE series = ${SERIES_OF}`;
