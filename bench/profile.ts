// Summarises a V8 .cpuprofile (from the server's --cpu-prof): self time by function and by area
// (a src/ file, a package, node internals, GC, idle), so a run can say where the CPU went.
// Also a CLI: node --import tsx bench/profile.ts <file.cpuprofile> [top]
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface ProfileSummary {
  file: string;
  totalMs: number;
  busyMs: number;
  byArea: Array<{ area: string; ms: number; pct: number }>;
  byFunction: Array<{ fn: string; ms: number; pct: number }>;
}

function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  const src = /\/(src|bench)\/(.+)$/.exec(url);
  return src ? `${src[1]}/${src[2]}` : url;
}

export function summarise(file: string, top = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    total += us;
    if (functionName === '(idle)') idle += us;
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const where = url ? `${area(url, functionName)}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>) =>
    [...m].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => ({ k, ms: us / 1000, pct: (us / busy) * 100 }));
  return {
    file,
    totalMs: total / 1000,
    busyMs: busy / 1000,
    byArea: rank(areas).map(({ k, ms, pct }) => ({ area: k, ms, pct })),
    byFunction: rank(fns).map(({ k, ms, pct }) => ({ fn: k, ms, pct })),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const row = (name: string, ms: number, pct: number) => `  ${pct.toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(7)} ms  ${name}`;
  return [
    `${s.file}: ${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled (percentages of busy time)`,
    ' by area:', ...s.byArea.map((a) => row(a.area, a.ms, a.pct)),
    ' by function (self time):', ...s.byFunction.map((f) => row(f.fn, f.ms, f.pct)),
  ].join('\n');
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node --import tsx bench/profile.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(formatSummary(summarise(file, Number(top ?? 20))));
}
