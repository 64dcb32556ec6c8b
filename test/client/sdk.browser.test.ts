/**
 * The browser bundle in a real Chromium (playwright-core) against a real Eventplane server on
 * loopback, from a page of another origin (CORS as on the internet): events submitted on a page
 * that then navigates away all reach the log and come out of /v2/stream; events submitted
 * offline survive the page and arrive exactly once when a page of the site is open again online.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { build } from 'esbuild'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { stringify } from 'yaml'
import { launchChromium } from '../browser.ts'
import { repoRoot, tempDir } from '../helpers.ts'
import { eventually, testPlatform, type TestPlatform } from '../intake/helpers.ts'
import { listen } from '../streams/helpers.ts'

const stream = 'product_metrics.web_base'
const topic = `datacenter1.${stream}`
let platform: TestPlatform
let intake: string
let site: Server
let siteUrl: string
let browser: Browser

before(async () => {
  const dir = tempDir()
  const streams = join(dir, 'streams.yaml')
  writeFileSync(
    streams,
    stringify({
      defaults: { topic_prefixes: ['datacenter1.'] },
      streams: {
        [stream]: {
          schema_title: 'analytics/product_metrics/web/base',
          destination_event_service: 'eventgate-analytics-external',
          sample: { unit: 'session', rate: 1 },
          producers: { metrics_platform_client: { provide_values: ['page_title', 'performer_session_id', 'performer_pageview_id'] } },
        },
        'eventplane.error.validation': { schema_title: 'error' },
      },
    }),
  )
  platform = await testPlatform({ stream_config: { source: streams, watch: false } })
  await platform.app.listen({ host: '127.0.0.1', port: 0 })
  intake = `http://127.0.0.1:${(platform.app.server.address() as AddressInfo).port}`
  const bundle = await build({ entryPoints: [join(repoRoot, 'packages/client/src/bundle.ts')], bundle: true, minify: true, format: 'iife', globalName: 'eventplane', target: ['es2020'], write: false })
  const script = bundle.outputFiles[0]!.text
  // Another origin than the intake: the page's requests are cross-origin, as a wiki's are.
  site = createServer((request, response) => {
    if (request.url === '/eventplane.min.js') return response.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
    if (request.url === '/other.html') return response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Elsewhere</title><p>elsewhere')
    if (request.url === '/page.html') {
      return response.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>SDK test page</title>
<script src="/eventplane.min.js"></script>
<script>
  // Batches wait a minute and retries too: what leaves, leaves by the page's own events.
  window.client = eventplane.createMetricsClient({ origin: ${JSON.stringify(intake)}, transport: { flushIntervalMs: 60000, retryBaseMs: 60000 } })
</script>`)
    }
    response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`
  browser = await launchChromium()
})
after(async () => {
  await browser?.close()
  site?.closeAllConnections()
  site?.close()
  await platform?.close()
})

async function openPage(context: BrowserContext): Promise<Page> {
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(`${siteUrl}/page.html`)
  await page.evaluate(() => (globalThis as unknown as { client: { ready: Promise<void> } }).client.ready)
  assert.deepEqual(errors, [], 'no script errors on the page')
  return page
}

async function submitClicks(page: Page, run: string, count: number): Promise<void> {
  await page.evaluate(
    ([stream, run, count]) => {
      const client = (globalThis as unknown as { client: { submitClick(stream: string, data: Record<string, unknown>): void } }).client
      for (let i = 0; i < count; i++) client.submitClick(stream, { element_id: `${run}-${i}`, action_source: run })
    },
    [stream, run, count] as const,
  )
}

/** meta.ids of the run's events in the log, with how many times each is there. */
async function inLog(run: string): Promise<Map<string, { count: number; event: Record<string, unknown> }>> {
  const found = new Map<string, { count: number; event: Record<string, unknown> }>()
  for (const event of await platform.events(topic)) {
    if (event['action_source'] !== run) continue
    const id = (event['meta'] as { id: string }).id
    const seen = found.get(id)
    found.set(id, { count: (seen?.count ?? 0) + 1, event })
  }
  return found
}

test('browser: events submitted on a page that then navigates away reach the log (valid against web/base) and /v2/stream', async () => {
  const context = await browser.newContext()
  try {
    const page = await openPage(context)
    const sse = listen(`${intake}/v2/stream/${stream}?since=${Date.now() - 60_000}`)
    await sse.opened
    await submitClicks(page, 'leave', 20)
    const queued = await page.evaluate(() => (globalThis as unknown as { client: { transport: { queued: number } } }).client.transport.queued)
    assert.equal(queued, 20, 'held for the batch timer (a minute)')
    await page.goto(`${siteUrl}/other.html`)
    await eventually(async () => (await inLog('leave')).size === 20, 10_000)
    const events = await inLog('leave')
    assert.ok([...events.values()].every((e) => e.count === 1), 'each event once')
    const sample = [...events.values()][0]!.event
    // In the log means the intake validated it (hasty: invalid events would be in the error stream instead).
    assert.equal(sample['$schema'], '/analytics/product_metrics/web/base/1.0.0')
    assert.deepEqual(sample['agent'], { client_platform: 'eventplane_js', client_platform_family: 'desktop_browser' })
    assert.equal((sample['page'] as { title?: string }).title, 'SDK test page')
    assert.match((sample['performer'] as { session_id: string }).session_id, /^[0-9a-f]{20}$/)
    assert.deepEqual(sample['sample'], { unit: 'session', rate: 1 })
    assert.equal((sample['meta'] as { domain?: string }).domain, '127.0.0.1')
    assert.equal((await platform.events('datacenter1.eventplane.error.validation')).length, 0, 'no event was refused')
    await eventually(() => sse.received.filter((r) => r.data['action_source'] === 'leave').length === 20, 10_000)
    sse.close()
  } finally {
    await context.close()
  }
})

test('browser: events submitted offline survive the page and arrive exactly once when the site is open again online', async () => {
  const context = await browser.newContext()
  try {
    // A blank tab of its own keeps the context open when the page closes.
    await context.newPage()
    const page = await openPage(context)
    await context.setOffline(true)
    await submitClicks(page, 'offline', 15)
    // A send while offline fails and waits for its retry; the events are in localStorage.
    await page.evaluate(() => (globalThis as unknown as { client: { transport: { flush(): Promise<void> } } }).client.transport.flush())
    const stored = await page.evaluate(() => Object.keys((globalThis as unknown as { localStorage: object }).localStorage).filter((k) => k.startsWith('eventplane:queue:')).length)
    assert.ok(stored >= 1, 'the queue is in localStorage')
    // Closed while offline: no beacon (it would be lost), the queue stays for the next page.
    await page.close({ runBeforeUnload: true })
    assert.equal((await inLog('offline')).size, 0, 'nothing arrived while offline')
    await context.setOffline(false)
    const next = await openPage(context)
    await eventually(async () => (await inLog('offline')).size === 15, 10_000)
    await new Promise((resolve) => setTimeout(resolve, 500))
    const events = await inLog('offline')
    assert.equal(events.size, 15)
    assert.ok([...events.values()].every((e) => e.count === 1), `each exactly once: ${[...events.values()].map((e) => e.count).join(',')}`)
    const left = await next.evaluate(() => {
      const storage = (globalThis as unknown as { localStorage: { getItem(key: string): string | null } & object }).localStorage
      return Object.keys(storage)
        .filter((k) => k.startsWith('eventplane:queue:'))
        .map((k) => (JSON.parse(storage.getItem(k) ?? '{"events":[]}') as { events: unknown[] }).events.length)
    })
    assert.ok(left.every((n: number) => n === 0), `nothing left queued: ${left.join(',')}`)
  } finally {
    await context.close()
  }
})

test('browser: a page that submits 10,000 events in a loop keeps its queue bounded, and counts and reports what it drops', async () => {
  const context = await browser.newContext()
  try {
    const page = await openPage(context)
    const warnings: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'warning') warnings.push(message.text())
    })
    await submitClicks(page, 'loop', 10_000)
    const after = await page.evaluate(() => {
      const transport = (globalThis as unknown as { client: { transport: { queued: number; dropped: { queue_full?: number } } } }).client.transport
      const stored = (globalThis as unknown as { localStorage: { getItem(k: string): string | null } & object }).localStorage
      const bytes = Object.keys(stored).reduce((n, k) => n + (stored.getItem(k)?.length ?? 0), 0)
      return { queued: transport.queued, dropped: transport.dropped.queue_full ?? 0, bytes }
    })
    assert.ok(after.queued <= 1000, `at most 1,000 queued: ${after.queued}`)
    assert.ok(after.dropped >= 8000, `the rest dropped and counted: ${after.dropped}`)
    assert.ok(after.bytes < 1_100_000, `localStorage holds at most about 1 MB of it: ${after.bytes}`)
    await page.evaluate(async () => {
      const transport = (globalThis as unknown as { client: { transport: { queued: number; flush(): Promise<void> } } }).client.transport
      while (transport.queued > 0) await transport.flush()
    })
    await eventually(async () => (await inLog('loop')).size + after.dropped === 10_000, 15_000)
    assert.ok(warnings.some((w) => /oldest were dropped/.test(w)), `the drops were reported: ${warnings.slice(0, 2).join(' | ')}`)
  } finally {
    await context.close()
  }
})
