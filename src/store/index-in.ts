// Strings written once and referred to by index (meter ids, group keys in pending rollup rows).

/** The index of `value` in `list`, appended (and remembered in `ids`) the first time. */
export function indexIn(list: string[], ids: Map<string, number>, value: string): number {
  let i = ids.get(value);
  if (i === undefined) ids.set(value, (i = list.push(value) - 1));
  return i;
}
