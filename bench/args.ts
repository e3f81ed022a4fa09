// Option parsers shared by the bench's command lines (commander calls them with the option's text).
import { InvalidArgumentError } from 'commander';

/** A whole number of at least 0; "10_000_000" reads as 10000000. */
export const int = (v: string) => {
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
};

/** Any number above 0 (seconds, minutes). */
export const positive = (v: string) => {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number');
  return n;
};

/** A whole number above 0 (counts). */
export const positiveInt = (v: string) => {
  const n = int(v);
  if (n === 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
};
