/**
 * `node --import tsx bench/filter.ts [--runs N] [--warmup N] [--budget N] [--nesting N] [--only TEXT]`:
 * how long one verdict of a `?filter=` takes (one `filter.test(event)`, what the server does
 * per event and per distinct filter, on its only thread), for the nastiest filters within
 * the limits, on ordinary and on large events. Each row is the median and the worst of
 * `--runs` verdicts, wall and CPU time, against `JSON.parse` of the same event in the same
 * run (work the server does for every event anyway). Each verdict is on a freshly parsed
 * event, after `--warmup` unmeasured ones (the first verdicts of a process run unoptimized
 * code). The
 * target: every verdict well under 50 ms, so that no filter blocks the event loop for
 * longer. Not part of `npm test`; run it on an idle machine (on a busy one the worst times
 * grow with the neighbours).
 */
import { parseArgs } from 'node:util'
import { compileFilter, type FilterLimits } from '../src/streams/filter.ts'

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '9' },
    warmup: { type: 'string', default: '2' },
    budget: { type: 'string', default: '100000' },
    nesting: { type: 'string', default: '2' },
    only: { type: 'string' },
  },
})
const runs = Number(flags.runs)
const warmup = Number(flags.warmup)
const limits: FilterLimits = { maxLength: 2000, maxNodes: 200, maxNesting: Number(flags.nesting), budget: Number(flags.budget) }

const meta = { domain: 'en.wikipedia.org', stream: 'bench', dt: '2026-11-27T12:00:00Z', id: 'x' }
const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const edit = {
  $schema: '/eventplane/mediawiki/recentchange/1.0.0',
  meta,
  type: 'edit',
  title: 'Talk:Main Page',
  bot: false,
  user: 'Example',
  comment: 'copyedit '.repeat(20),
  length: { old: 1200, new: 2500 },
  revision: { old: 1, new: 2 },
  tags: ['mobile edit', 'visualeditor'],
}
const events: Record<string, string> = {
  'edit (1 KB)': JSON.stringify(edit),
  'list of 10k numbers': JSON.stringify({ meta, l: range(10_000), test_map: {}, text: '' }),
  'map of 10k entries': JSON.stringify({ meta, l: [], test_map: Object.fromEntries(range(10_000).map((i) => [`k${i}`, i])), text: '' }),
  'list of 10k objects': JSON.stringify({ meta, l: range(10_000).map((i) => ({ a: i, b: `v${i}`, c: [i, i], d: { e: i } })), test_map: {}, text: '' }),
  'list of 500k numbers (3.9 MB)': JSON.stringify({ meta, l: range(500_000).map((i) => 1_000_000 + i), test_map: {}, text: '' }),
  'map of 200k entries (3.9 MB)': JSON.stringify({ meta, l: [], test_map: Object.fromEntries(range(200_000).map((i) => [`key${100_000 + i}`, i])), text: '' }),
  'string of 4 MiB': JSON.stringify({ meta, l: range(100), test_map: {}, text: 'a'.repeat(4 * 1024 * 1024 - 200) }),
}

/** The longest `term(0) || term(1) || ...` inside `wrap` that the node limit lets through. */
function longest(wrap: (chain: string) => string, term: (i: number) => string): string {
  for (let count = 200; count > 1; count--) {
    const expression = wrap(range(count).map(term).join(' || '))
    try {
      compileFilter({ expression }, limits)
      return expression
    } catch {
      // too many nodes: one term fewer
    }
  }
  throw new Error(`no chain fits: ${wrap('...')}`)
}
const filters: string[] = [
  // ordinary
  'meta.domain == "en.wikipedia.org" && !bot',
  'type in ["edit", "new"] && title.startsWith("Talk:")',
  'l.exists(x, x == -1)',
  'test_map.exists(k, test_map[k] == -1)',
  'l.map(x, x).size() > 0',
  // the finding: nested comprehensions, the deepest allowed
  'test_map.all(a, test_map.all(b, true))',
  'l.all(a, l.all(b, true))',
  'l.exists(a, l.exists(b, a == b + 0.5))',
  'l.map(a, l.map(b, b)).size() > 0',
  // work hidden in one node: searches, number-keyed map lookups, deep comparisons
  'l.exists(a, -1 in l)',
  'test_map.exists(k, test_map[1] == 0)',
  'test_map.exists(k, 1 in test_map)',
  'l.exists(a, l == [1, 2])',
  'l.exists(a, [l, l, l] == [l, l, [1]])',
  'l.exists(a, test_map == {"x": 1})',
  // every node an error (each one an Error object)
  longest((chain) => `l.exists(x, ${chain})`, (i) => `x.f${i}`),
  longest((chain) => `l.exists(x, ${chain})`, (i) => `x[${i}] == x`),
  // many calls per element
  longest((chain) => `l.exists(x, ${chain})`, (i) => `x == ${i}.5`),
  // strings
  'size(text) > 0',
  'text.contains("' + 'a'.repeat(500) + 'b")',
  'text.matches("(a?){30}a{30}$")',
  'l.exists(x, text.matches("^b"))',
  'int(text) > 0',
  'l.exists(x, text + text == text)',
  'l.exists(x, timestamp("2026-01-01T00:00:00Z").getHours("America/New_York") == 99)',
]

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

interface Row {
  event: string
  filter: string
  verdict: string
  medianMs: number
  worstMs: number
  worstCpuMs: number
  parseMs: number
}

const rows: Row[] = []
for (const [name, json] of Object.entries(events)) {
  const parses: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    JSON.parse(json)
    parses.push(performance.now() - t)
  }
  const parseMs = median(parses)
  for (const expression of filters) {
    if (flags.only !== undefined && !expression.includes(flags.only)) continue
    const filter = compileFilter({ expression }, limits)
    const walls: number[] = []
    const cpus: number[] = []
    let verdict = ''
    for (let i = 0; i < warmup; i++) filter.test(JSON.parse(json))
    for (let i = 0; i < runs; i++) {
      const event: unknown = JSON.parse(json)
      const cpu = process.cpuUsage()
      const t = performance.now()
      verdict = filter.test(event)
      walls.push(performance.now() - t)
      const used = process.cpuUsage(cpu)
      cpus.push((used.user + used.system) / 1000)
    }
    rows.push({ event: name, filter: expression, verdict, medianMs: median(walls), worstMs: Math.max(...walls), worstCpuMs: Math.max(...cpus), parseMs })
  }
}

const cut = (text: string, width: number) => (text.length > width ? `${text.slice(0, width - 1)}…` : text)
console.log(`\nOne filter verdict, ${runs} runs each; limits: nesting ${limits.maxNesting}, budget ${limits.budget} steps.\n`)
console.log('| event | filter | verdict | median ms | worst ms | worst CPU ms | worst / JSON.parse |')
console.log('|---|---|---|---:|---:|---:|---:|')
for (const r of rows) {
  console.log(
    `| ${r.event} | \`${cut(r.filter, 60)}\` | ${r.verdict} | ${r.medianMs.toFixed(2)} | ${r.worstMs.toFixed(2)} | ${r.worstCpuMs.toFixed(2)} | ${(r.worstMs / r.parseMs).toFixed(2)}x |`,
  )
}
const worst = rows.reduce((a, b) => (b.worstMs > a.worstMs ? b : a))
console.log(`\nWorst: ${worst.worstMs.toFixed(2)} ms (${worst.verdict}) for \`${worst.filter}\` on ${worst.event}; target: well under 50 ms.`)
