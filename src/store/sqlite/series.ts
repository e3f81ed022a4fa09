// Rollup rows name their meter by its series number (meters.series, migration 12), not by the
// tenant's and the meter's text ids. A number is assigned when a meter is created and never changes.
// A deleted meter's number can be given again (max + 1): its rows went with it, in the transaction
// that deleted it, and every writer looks numbers up inside the transaction that writes the rows.

/** The series of the meter @meter of tenant @tenant: a scalar subquery SQLite evaluates once per statement. */
export const SERIES_OF = '(SELECT series FROM meters WHERE tenant_id = @tenant AND id = @meter)';

/** SERIES_OF with positional parameters (tenant, then meter). */
export const SERIES_OF_POSITIONAL = '(SELECT series FROM meters WHERE tenant_id = ? AND id = ?)';

/** A new meter's series: above every series in use. */
export const NEXT_SERIES = '(SELECT coalesce(max(series), 0) + 1 FROM meters)';
