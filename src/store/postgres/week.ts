// The start of a bucket's UTC week in SQL, as weekOf in ../levels.ts computes it (a modulo that
// stays positive before the epoch).
import { WEEK_MS, WEEK_OFFSET_MS } from '../levels.js';

export const weekOfSql = (bucket: string) => `${bucket} - (((${bucket} - ${WEEK_OFFSET_MS}) % ${WEEK_MS}) + ${WEEK_MS}) % ${WEEK_MS}`;
export const WEEK_OF_BUCKET = weekOfSql('bucket');
