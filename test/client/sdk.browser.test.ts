/**
 * The browser bundle in a real Chromium (playwright-core) against a real Eventplane server on
 * loopback, from a page of another origin (CORS as on the internet): events submitted on a page
 * that then navigates away all reach the log and come out of /v2/stream; events submitted
 * offline survive a reload and arrive exactly once when the browser is back online; on a MediaWiki
 * page, events validate against Wikimedia's web/base too.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, afterEach, before, test } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { stringify } from 'yaml'
import { launchChromium } from '../browser.ts'
import { fixtureSkipped, tempDir } from '../helpers.ts'
import { eventually, testPlatform, type TestPlatform } from '../intake/helpers.ts'
import { listen } from '../streams/helpers.ts'
import { bundleScript, serveSite, type Site } from './site.ts'
import { wmfWebBase } from './wmf-web-base.ts'

const stream = 'product_metrics.web_base'
const topic = `datacenter1.${stream}`
/** A stream asking for every contextual attribute Wikimedia's JS integration fills (reference §2.4). */
const fullStream = 'product_metrics.web_full'
const everyAttribute = [
  ...['id', 'title', 'namespace_id', 'namespace_name', 'revision_id', 'wikidata_qid', 'content_language', 'is_redirect', 'user_groups_allowed_to_edit', 'user_groups_allowed_to_move'].map((n) => `page_${n}`),
  ...['skin', 'version', 'is_production', 'is_debug_mode', 'database', 'site_content_language'].map((n) => `mediawiki_${n}`),
  ...['is_logged_in', 'id', 'name', 'groups', 'is_bot', 'is_temp', 'language', 'language_variant', 'can_probably_edit_page', 'edit_count', 'edit_count_bucket', 'registration_dt', 'session_id', 'pageview_id'].map((n) => `performer_${n}`),
]
/** mw.config of a MediaWiki page (the values of Wikimedia's cross-platform consistency test, §2.12, with a logged-in user). */
const mwConfig = {
  wgArticleId: 30715282, wgTitle: 'Dark Souls', wgNamespaceNumber: 0, wgCanonicalNamespace: '', wgRevisionId: 1084793259, wgWikibaseItemId: 'Q1166232',
  wgPageContentLanguage: 'en', wgIsRedirect: false, wgRestrictionEdit: [], wgRestrictionMove: [], skin: 'vector-2022', wgVersion: '1.39.0-wmf.8', debug: false,
  wgDBname: 'enwiki', wgContentLanguage: 'en', wgMFMode: null, wgUserName: 'Example', wgUserId: 42, wgUserGroups: ['*', 'user', 'autoconfirmed'],
  wgUserIsTemp: false, wgUserLanguage: 'en', wgUserVariant: 'en', wgIsProbablyEditable: true, wgUserEditCount: 120, wgUserEditCountBucket: '100-999 edits',
  wgUserRegistration: 1600000000000,
}
let platform: TestPlatform
let intake: string
let site: Site
let siteUrl: string
/** The site's pages and the bundle, by path. */
let siteFiles: Map<string, { type: string; body: string }>
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
          schema_title: 'eventplane/product_metrics/web/base',
          destination_event_service: 'eventgate-analytics-external',
          sample: { unit: 'session', rate: 1 },
          producers: { metrics_platform_client: { provide_values: ['page_title', 'performer_session_id', 'performer_pageview_id'] } },
        },
        [fullStream]: {
          schema_title: 'eventplane/product_metrics/web/base',
          destination_event_service: 'eventgate-analytics-external',
          sample: { unit: 'pageview', rate: 1 },
          producers: { metrics_platform_client: { provide_values: everyAttribute } },
        },
        'eventplane.error.validation': { schema_title: 'eventplane/error' },
      },
    }),
  )
  platform = await testPlatform({ stream_config: { source: streams, watch: false } })
  intake = await platform.app.listen({ host: '127.0.0.1', port: 0 })
  const script = await bundleScript()
  // Another origin than the intake: the page's requests are cross-origin, as a wiki's are.
  const client = `window.client = eventplane.createMetricsClient({ origin: ${JSON.stringify(intake)}, transport: { flushIntervalMs: 60000, retryBaseMs: 60000 } })`
  siteFiles = new Map([
    ['/eventplane.min.js', { type: 'text/javascript', body: script }],
    ['/other.html', { type: 'text/html', body: '<!doctype html><title>Elsewhere</title><p>elsewhere' }],
    // Batches wait a minute and retries too: what leaves, leaves by the page's own events.
    ['/page.html', { type: 'text/html', body: `<!doctype html><title>SDK test page</title>\n<script src="/eventplane.min.js"></script>\n<script>${client}</script>` }],
    [
      '/wiki.html',
      {
        type: 'text/html',
        body: `<!doctype html><title>Dark Souls - Wikipedia</title>
<script>
  const values = ${JSON.stringify(mwConfig)}
  window.mw = { config: { get: (name) => (name in values ? values[name] : null) } }
</script>
<script src="/eventplane.min.js"></script>
<script>${client}</script>`,
      },
    ],
  ])
  // Another origin than the intake: the page's requests are cross-origin, as a wiki's are.
  site = await serveSite(siteFiles)
  siteUrl = site.url
  // A page served by a route (offline, below) has no network address, so Chromium's Local
  // Network Access counts it as public and blocks its requests to the intake on loopback; a
  // page from the cache or a service worker keeps the address it came from. The check is off
  // for these tests, as it would not apply to a site and an intake on the same network.
  browser = await launchChromium(['--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessRespectPreflightResults'])
})
after(async () => {
  await browser?.close()
  site?.close()
  await platform?.close()
})

/** Browser contexts of the running test, closed after it whatever its outcome. */
const contexts: BrowserContext[] = []
async function newContext(): Promise<BrowserContext> {
  const context = await browser.newContext()
  contexts.push(context)
  return context
}
afterEach(async () => {
  for (const context of contexts.splice(0)) await context.close()
})

async function openPage(context: BrowserContext, path = '/page.html'): Promise<Page> {
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(`${siteUrl}${path}`)
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
async function inLog(run: string, from = topic): Promise<Map<string, { count: number; event: Record<string, unknown> }>> {
  const found = new Map<string, { count: number; event: Record<string, unknown> }>()
  for (const event of await platform.events(from)) {
    if (event['action_source'] !== run) continue
    const id = (event['meta'] as { id: string }).id
    const seen = found.get(id)
    found.set(id, { count: (seen?.count ?? 0) + 1, event })
  }
  return found
}

test('browser: events submitted on a page that then navigates away reach the log (valid against web/base) and /v2/stream', { skip: fixtureSkipped }, async () => {
  const context = await newContext()
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
  assert.equal(sample['$schema'], '/eventplane/product_metrics/web/base/1.0.0')
  assert.deepEqual(sample['agent'], { client_platform: 'mediawiki_js', client_platform_family: 'desktop_browser' })
  assert.equal((sample['page'] as { title?: string }).title, 'SDK test page')
  assert.match((sample['performer'] as { session_id: string }).session_id, /^[0-9a-f]{20}$/)
  assert.deepEqual(sample['sample'], { unit: 'session', rate: 1 })
  assert.equal((sample['meta'] as { domain?: string }).domain, '127.0.0.1')
  assert.equal((await platform.events('datacenter1.eventplane.error.validation')).length, 0, 'no event was refused')
  const wmf = wmfWebBase()
  for (const { event } of events.values()) assert.ok(wmf(event), `valid against Wikimedia's web/base 1.3.0: ${JSON.stringify(wmf.errors)}`)
  await eventually(() => sse.received.filter((r) => r.data['action_source'] === 'leave').length === 20, 10_000)
  sse.close()
})

test("browser: on a MediaWiki page, with every attribute asked for, events validate against the bundled base schema and Wikimedia's web/base 1.3.0", { skip: fixtureSkipped }, async () => {
  const context = await newContext()
  const page = await openPage(context, '/wiki.html')
  await page.evaluate(
    ([stream]) => {
      type Client = {
        submitClick(stream: string, data: Record<string, unknown>): void
        submitInteraction(stream: string, schema: string, action: string, data?: Record<string, unknown>): void
        newInstrument(stream: string, schema: string, name: string): { submitInteraction(action: string, data?: Record<string, unknown>): void }
        transport: { flush(): Promise<void> }
      }
      const client = (globalThis as unknown as { client: Client }).client
      client.submitClick(stream, { element_id: 'save', element_friendly_name: 'Save', action_source: 'wiki' })
      client.submitInteraction(stream, '/eventplane/product_metrics/web/base/1.0.0', 'init', { action_source: 'wiki', action_context: JSON.stringify({ a: 1 }) })
      const funnel = client.newInstrument(stream, '/eventplane/product_metrics/web/base/1.0.0', 'edit_funnel')
      funnel.submitInteraction('start', { action_source: 'wiki', funnel_name: 'edit' })
      funnel.submitInteraction('save', { action_source: 'wiki', funnel_name: 'edit' })
      return client.transport.flush()
    },
    [fullStream] as const,
  )
  await eventually(async () => (await inLog('wiki', `datacenter1.${fullStream}`)).size === 4, 10_000)
  const events = [...(await inLog('wiki', `datacenter1.${fullStream}`)).values()].map((e) => e.event)
  // In the log: the intake validated them against the bundled schema (none went to the error stream).
  assert.equal((await platform.events('datacenter1.eventplane.error.validation')).length, 0, 'no event was refused')
  const wmf = wmfWebBase()
  for (const event of events) assert.ok(wmf(event), `${event['action']}: not valid against Wikimedia's web/base 1.3.0: ${JSON.stringify(wmf.errors)}`)
  const click = events.find((e) => e['action'] === 'click')!
  assert.deepEqual(click['agent'], { client_platform: 'mediawiki_js', client_platform_family: 'desktop_browser' })
  assert.deepEqual(click['page'], {
    id: 30715282, title: 'Dark Souls', namespace_id: 0, namespace_name: '', revision_id: 1084793259, wikidata_qid: 'Q1166232',
    content_language: 'en', is_redirect: false, user_groups_allowed_to_edit: [], user_groups_allowed_to_move: [],
  })
  assert.deepEqual(click['mediawiki'], { skin: 'vector-2022', version: '1.39.0-wmf.8', is_production: true, is_debug_mode: false, database: 'enwiki', site_content_language: 'en' })
  const performer = click['performer'] as Record<string, unknown>
  assert.deepEqual({ ...performer, session_id: 'x', pageview_id: 'x' }, {
    is_logged_in: true, id: 42, name: 'Example', groups: ['*', 'user', 'autoconfirmed'], is_bot: false, is_temp: false, language: 'en', language_variant: 'en',
    can_probably_edit_page: true, edit_count: 120, edit_count_bucket: '100-999 edits', registration_dt: '2020-09-13T12:26:40.000Z', session_id: 'x', pageview_id: 'x',
  })
  assert.deepEqual(events.filter((e) => e['instrument_name'] === 'edit_funnel').map((e) => [e['action'], e['funnel_event_sequence_position']]).sort(), [['save', 2], ['start', 1]])
})

test('browser: events submitted offline survive a reload, and arrive exactly once when the browser is back online', async () => {
  const context = await newContext()
  const page = await openPage(context)
  // Offline, the site's pages still load (as from a service worker or the browser's cache),
  // and the intake is out of reach: it stops listening. (Chromium's offline emulation alone
  // did not hold back every request: in some runs, a keepalive POST made as the page
  // reloaded reached the intake although the page saw it fail, whether a route aborted it
  // or not. A closed port fails it for real.)
  await context.route(`${siteUrl}/**`, (route) => {
    const file = siteFiles.get(new URL(route.request().url()).pathname)
    return file === undefined ? route.fulfill({ status: 404 }) : route.fulfill({ status: 200, contentType: file.type, body: file.body })
  })
  const server = platform.app.server
  await new Promise((resolve) => {
    server.close(resolve)
    server.closeAllConnections()
  })
  await context.setOffline(true)
  await submitClicks(page, 'offline', 15)
  // A send while offline fails and waits for its retry; the events are in localStorage.
  await page.evaluate(() => (globalThis as unknown as { client: { transport: { flush(): Promise<void> } } }).client.transport.flush())
  const stored = await page.evaluate(() => Object.keys((globalThis as unknown as { localStorage: object }).localStorage).filter((k) => k.startsWith('eventplane:queue:')).length)
  assert.ok(stored >= 1, 'the queue is in localStorage')
  // Reloaded while offline: no beacon on the way out (it would be lost); the new page adopts the queue.
  await page.reload()
  const after = await page.evaluate(() => {
    const g = globalThis as unknown as { navigator: { onLine: boolean }; client: { transport: { queued: number; stats: { adopted: number } } } }
    return { online: g.navigator.onLine, queued: g.client.transport.queued, adopted: g.client.transport.stats.adopted }
  })
  assert.deepEqual(after, { online: false, queued: 15, adopted: 15 }, 'the reloaded page is offline and holds the 15 events, adopted')
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal((await inLog('offline')).size, 0, 'nothing arrived while offline')
  // Online again, the intake back on its port.
  await new Promise<void>((resolve) => server.listen(Number(new URL(intake).port), '127.0.0.1', resolve))
  await context.unrouteAll()
  await context.setOffline(false)
  await eventually(async () => (await inLog('offline')).size === 15, 10_000)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const events = await inLog('offline')
  assert.equal(events.size, 15)
  assert.ok([...events.values()].every((e) => e.count === 1), `each exactly once: ${[...events.values()].map((e) => e.count).join(',')}`)
  const left = await page.evaluate(() => {
    const storage = (globalThis as unknown as { localStorage: { getItem(key: string): string | null } & object }).localStorage
    return Object.keys(storage)
      .filter((k) => k.startsWith('eventplane:queue:'))
      .map((k) => (JSON.parse(storage.getItem(k) ?? '{"events":[]}') as { events: unknown[] }).events.length)
  })
  assert.ok(left.every((n: number) => n === 0), `nothing left queued: ${left.join(',')}`)
})

test('browser: a page that submits 10,000 events in a loop keeps its queue bounded, and counts and reports what it drops', async () => {
  const context = await newContext()
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
})
