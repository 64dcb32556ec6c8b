/**
 * The 1-minute soak (`npm run soak` runs it for 10): the server from src/, started with
 * `npm start`'s node flags, under intake at a steady rate, 1,000 filtering SSE clients, schema
 * and stream config GETs and stream config reloads; then its checks. soak/soak.ts says what
 * each check means. The samples and checks are printed as the test's diagnostics.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runSoak } from '../../soak/soak.ts'
import { tempDir } from '../helpers.ts'

test('a 1-minute soak: 1,000 filtering SSE clients, intake, GETs and reloads; memory flat, event loop responsive, every acknowledged event exactly once', { timeout: 240_000 }, async (t) => {
  const report = await runSoak({
    seconds: 60,
    warmupSeconds: 15,
    // The first minute is when V8 grows its young generation under the load: RSS climbs about
    // 0.7 MiB/s for the whole of it (5.1 % in the check, measured here, where the 10-minute run
    // holds 10 % after its minute of warm-up). 15 % leaves room for a slower machine and still
    // fails a leak of a few MiB a second.
    rssGrowthLimit: 0.15,
    sampleSeconds: 5,
    rate: 200,
    clients: 1000,
    groups: 10,
    reloadEverySeconds: 10,
    getsPerSecond: 20,
    server: 'src',
    nodeOptions: [],
    pin: false,
    dir: tempDir('eventplane-soak-'),
    say: (line) => t.diagnostic(line),
  })
  for (const check of report.checks) t.diagnostic(`${check.ok ? 'ok' : 'FAIL'}: ${check.name}: ${check.detail}`)
  assert.deepEqual(
    report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`),
    [],
  )
})
