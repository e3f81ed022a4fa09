// The start of a rollup bucket's UTC day or week in SQL, as dayOf and weekOf in ../levels.ts compute
// it (a modulo that stays positive before the epoch).
import { DAY_MS, WEEK_MS, WEEK_OFFSET_MS } from '../levels.js';

const startOf = (size: number, offset: number) => `bucket - (((bucket - ${offset}) % ${size}) + ${size}) % ${size}`;

export const DAY_OF_BUCKET = startOf(DAY_MS, 0);
export const WEEK_OF_BUCKET = startOf(WEEK_MS, WEEK_OFFSET_MS);
