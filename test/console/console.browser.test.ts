/**
 * The console at / in Chromium, on the bundled config plus a repository of hostile schemas:
 * each page renders with data, links work, markup in schemas renders as text and runs nothing
 * (under the strict CSP), no console errors; screenshots of each page in test-results/.
 */
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { parse, stringify } from 'yaml'
import type { RunningServer } from '../../src/server/index.ts'
import { launchChromium, screenshot } from '../browser.ts'
import { bundledSchemas, bundledStreams, serveBundled, tempDir, testEventLog } from '../helpers.ts'

const hostileDescription = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
const hostileField = '<img src=x onerror="window.pwned = 3">'

/** A repository with one schema whose description, field names and example hold markup. */
function hostileRepository(dir: string): string {
  const root = join(dir, 'hostile')
  const folder = join(root, 'jsonschema', 'hostile', 'event')
  mkdirSync(folder, { recursive: true })
  writeFileSync(join(root, '.jsonschema-tools.yaml'), 'schemaBasePath: ./jsonschema/\ncontentTypes: [yaml]\n')
  const schema = {
    title: 'hostile/event',
    $id: '/hostile/event/1.0.0',
    $schema: 'https://json-schema.org/draft-07/schema#',
    description: hostileDescription,
    type: 'object',
    required: ['$schema'],
    properties: { $schema: { type: 'string' }, [hostileField]: { type: 'string', description: '<b>not bold</b>' }, nested: { type: 'object', properties: { inner: { type: 'integer', maximum: 5 } } } },
    examples: [{ $schema: '/hostile/event/1.0.0', [hostileField]: '</pre><script>window.pwned = 4</script>' }],
  }
  writeFileSync(join(folder, '1.0.0.yaml'), stringify(schema))
  // 1.1.0 breaks 1.0.0: nested.inner becomes a string (and a field is added).
  const next = structuredClone(schema) as unknown as { $id: string; properties: Record<string, unknown> }
  next.$id = '/hostile/event/1.1.0'
  next.properties['nested'] = { type: 'object', properties: { inner: { type: 'string' } } }
  next.properties['added'] = { type: 'boolean' }
  for (const name of ['1.1.0.yaml', 'current.yaml']) writeFileSync(join(folder, name), stringify(next))
  return root
}

const hostileKey = '/^hostile\\.(<img src=x onerror="window.pwned = 6">)?$/'
const hostileStreamDescription = '<script>window.pwned = 7</script><img src=x onerror="window.pwned = 8">'

/** The bundled stream config, plus a /regex/ key and a description holding markup (stream names cannot). */
function hostileStreams(dir: string): string {
  const config = parse(readFileSync(bundledStreams, 'utf8')) as { streams: Record<string, Record<string, unknown>> }
  config.streams[hostileKey] = { schema_title: 'hostile/event', description: hostileStreamDescription }
  config.streams['test.event']!['description'] = `${String(config.streams['test.event']!['description'])} ${hostileStreamDescription}`
  const file = join(dir, 'streams.yaml')
  writeFileSync(file, stringify(config))
  return file
}

describe('the console in Chromium', { timeout: 120_000 }, () => {
  let server: RunningServer
  let browser: Browser
  let page: Page
  const problems: string[] = []
  before(async () => {
    const dir = tempDir()
    server = await serveBundled({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }, { name: 'hostile', path: hostileRepository(dir) }] },
      stream_config: { source: hostileStreams(dir), watch: false },
      // Served here to show the latest errors; off by default (a test below checks that page).
      streams: { expose_error_stream: true },
      event_log: await testEventLog(),
    })
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    // A wait that cannot succeed fails the test instead of holding the run.
    page.setDefaultTimeout(15_000)
    page.setDefaultNavigationTimeout(15_000)
    page.on('console', (message) => {
      // The browser reports the 400 that "try it" asks for on purpose.
      const expected = message.location().url.endsWith('/v1/events') && message.text().includes('status of 400')
      if (message.type() === 'error' && !expected) problems.push(`console: ${message.text()}`)
    })
    page.on('pageerror', (error) => problems.push(`page: ${error.message}`))
    page.on('request', (request) => {
      if (!request.url().startsWith(server.url)) problems.push(`foreign request: ${request.url()}`)
    })
  })
  after(async () => {
    await browser?.close()
    await server?.close()
  })

  /** Loads a console address anew (a change of the hash alone would only re-render the open page). */
  const open = async (hash: string) => {
    await page.goto('about:blank')
    await page.goto(`${server.url}/${hash}`)
  }

  test('a browser at / gets the console; API clients keep the JSON index', async () => {
    const json = await fetch(`${server.url}/`)
    assert.match(json.headers.get('content-type') ?? '', /application\/json/)
    assert.equal(((await json.json()) as { name: string }).name, 'eventplane')
    const html = await fetch(`${server.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } })
    assert.match(html.headers.get('content-type') ?? '', /text\/html/)
    assert.match(html.headers.get('content-security-policy') ?? '', /script-src 'self'/)

    await page.goto(`${server.url}/`)
    await page.locator('h1', { hasText: 'Eventplane 0.1.0' }).waitFor({ timeout: 10_000 })
    const cards = await page.locator('.card').allInnerTexts()
    assert.match(cards[0]!, /^1[0-9]\s+Schemas/, `the bundled titles and the hostile one: ${cards[0]}`)
    assert.match(cards[1]!, /^\d+\s+Streams/)
    await page.screenshot({ path: screenshot('console-home'), fullPage: true })
  })

  test('schemas: titles by repository, a filter, and a version as a field table with its examples', async () => {
    await page.locator('nav a', { hasText: 'Schemas' }).click()
    await page.locator('h1', { hasText: 'Schemas' }).waitFor()
    assert.equal(await page.locator('nav a[aria-current=page]').innerText(), 'Schemas')
    assert.ok((await page.locator('section[data-repository=eventplane] li').count()) >= 10)
    await page.locator('#schema-search').fill('test/ev')
    assert.deepEqual(await page.locator('li[data-title]:visible > a').allInnerTexts(), ['eventplane/test/event'])
    assert.deepEqual(await page.locator('li[data-title="eventplane/test/event"] .chips a').allInnerTexts(), ['1.0.0'], 'each version, linked')
    await page.screenshot({ path: screenshot('console-schemas'), fullPage: true })

    await page.locator('li[data-title="eventplane/test/event"] > a').click()
    await page.locator('table.fields').waitFor()
    assert.match(await page.locator('h1').innerText(), /^eventplane\/test\/event\s+1\.0\.0$/)
    const stream = page.locator('tr[data-field="meta.stream"]')
    assert.match(await stream.innerText(), /meta\.stream\s+string\s+required/)
    assert.ok((await page.locator('pre').count()) >= 1, 'the example')
    assert.match(await page.locator('pre').first().innerText(), /"\$schema": "\/eventplane\/test\/event\/1\.0\.0"/)
    // Download links serve the version itself.
    const yaml = await page.locator('a', { hasText: 'YAML' }).getAttribute('href')
    assert.equal((await fetch(`${server.url}${yaml}`)).status, 200)
    await page.screenshot({ path: screenshot('console-schema'), fullPage: true })
  })

  test('try it: the example posted to a stream that takes the schema gets 201; an invalid one, 400 with the reason', async () => {
    await open('#/schemas/eventplane/eventplane/test/event')
    await page.locator('#try-event').waitFor({ timeout: 10_000 })
    const event = JSON.parse(await page.locator('#try-event').inputValue()) as { meta: { stream: string; dt?: string } }
    assert.equal(event.meta.stream, 'test.event')
    assert.equal(event.meta.dt, undefined, 'the intake sets the time')
    await page.locator('#try-send').click()
    await page.locator('#try-result [data-status="201"]').waitFor({ timeout: 10_000 })
    await page.locator('#try-event').fill(JSON.stringify({ ...event, test: 5 }))
    await page.locator('#try-send').click()
    await page.locator('#try-result [data-status="400"]').waitFor({ timeout: 10_000 })
    assert.match(await page.locator('#try-result pre').innerText(), /'\.test' should be string/)
    await page.screenshot({ path: screenshot('console-try'), fullPage: true })
  })

  test('markup in a schema (description, field names, examples) is shown as text and runs nothing', async () => {
    await open('#/schemas/hostile/hostile/event@1.0.0')
    await page.locator('table.fields').waitFor()
    assert.equal(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned), undefined)
    assert.equal(await page.locator('#view img').count(), 0)
    assert.equal(await page.locator('#view script').count(), 0)
    assert.equal(await page.locator('#view b').count(), 0)
    assert.ok((await page.locator('#view').innerText()).includes(hostileDescription))
    assert.ok((await page.locator('tr[data-field]').allInnerTexts()).some((t) => t.includes(hostileField)))
    assert.match(await page.locator('tr[data-field="nested.inner"]').innerText(), /integer\s+maximum: 5/)
  })

  test('two versions compared: the changes, and the incompatibility with its reason', async () => {
    await open('#/schemas/hostile/hostile/event')
    // The latest version by default.
    await page.locator('h1', { hasText: /1\.1\.0$/ }).waitFor({ timeout: 10_000 })
    await page.locator('.verdict').waitFor({ timeout: 10_000 })
    assert.equal(await page.locator('#diff-from').inputValue(), '1.0.0')
    assert.equal(await page.locator('#diff-to').inputValue(), '1.1.0')
    const verdict = await page.locator('.verdict').innerText()
    assert.match(verdict, /1\.1\.0 is not compatible with 1\.0\.0:/)
    assert.match(verdict, /\/properties\/nested\/properties\/inner\/type/)
    const changes = await page.locator('table.diff tbody tr').allInnerTexts()
    assert.ok(changes.some((c) => /^changed\s+\/properties\/nested\/properties\/inner\/type\s+"integer"\s+"string"/.test(c)), changes.join('\n'))
    assert.ok(changes.some((c) => /^added\s+\/properties\/added/.test(c)), changes.join('\n'))
    await page.screenshot({ path: screenshot('console-diff'), fullPage: true })
    // The other way round is not checked: only a newer version against an older one.
    await page.locator('#diff-from').selectOption('1.1.0')
    await page.locator('#diff-to').selectOption('1.0.0')
    await page.locator('.verdict', { hasText: 'not newer' }).waitFor()
  })

  test('streams: every stream with its schema and versions, topics and config, linked to the live tail', async () => {
    await open('#/streams')
    const row = page.locator('tr[data-stream="test.event"]')
    await row.waitFor({ timeout: 10_000 })
    assert.match(await row.innerText(), /^test\.event\s+eventplane\/test\/event 1\.0\.0\s+datacenter1\.test\.event/)
    assert.equal(await row.locator('a').first().getAttribute('href'), '#/tail?streams=test.event')
    assert.equal(await row.locator('a', { hasText: 'eventplane/test/event' }).getAttribute('href'), '#/schemas/eventplane/eventplane/test/event')
    // The stream's config, as JSON, when asked for.
    await row.locator('summary', { hasText: 'config' }).click()
    assert.match(await row.locator('details pre').innerText(), /"schema_title": "eventplane\/test\/event"/)
    // Markup in a /regex/ key and in descriptions shows as text.
    assert.ok((await page.locator(`tr[data-stream="${hostileKey.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"]`).innerText()).includes(hostileKey))
    assert.ok((await row.innerText()).includes(hostileStreamDescription))
    assert.equal(await page.locator('#view img, #view script').count(), 0)
    assert.equal(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned), undefined)
    await page.locator('#stream-search').fill('test.ev')
    assert.deepEqual(await page.locator('tr[data-stream]:visible').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-stream'))), ['test.event'])
    await page.screenshot({ path: screenshot('console-streams'), fullPage: true })
  })

  const post = (events: unknown[]) => fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
  const valid = (i: number) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: `console ${i}` })

  test('intake: accepted, invalid and error counts per stream with their bars, updated as events arrive; the latest errors with reason and event', async () => {
    // What earlier tests posted to test.event (try it) counts too.
    const before = (await (await fetch(`${server.url}/v1/intake/recent`)).json()) as { buckets: Array<{ streams: Record<string, { accepted?: number; invalid?: number }> }> }
    const sum = (outcome: 'accepted' | 'invalid') => before.buckets.reduce((n, b) => n + (b.streams['test.event']?.[outcome] ?? 0), 0)
    const [accepted, invalid] = [sum('accepted'), sum('invalid')]
    assert.equal((await post([valid(1), valid(2), valid(3)])).status, 201)
    // An invalid event whose values hold markup: its reason and raw event are shown as text.
    const hostileValue = '<img src=x onerror="window.pwned = 5"></script>'
    assert.equal((await post([valid(4), { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', domain: hostileValue }, test: 5 }])).status, 207)
    await open('#/intake')
    const row = page.locator('tr[data-stream="test.event"]').first()
    await row.waitFor({ timeout: 10_000 })
    assert.match(await row.innerText(), new RegExp(`^test\\.event\\s+${accepted + 4}\\s+${invalid + 1}\\s+0`))
    assert.ok((await row.locator('svg rect.accepted').count()) >= 1)
    assert.ok((await row.locator('svg rect.invalid').count()) >= 1)

    // The latest errors, from the error stream (served on this server).
    const error = page.locator('#errors tr.error-event').first()
    await error.waitFor({ timeout: 10_000 })
    assert.match(await error.innerText(), /test\.event\s+EVP_\w+\s+.*'\.test' should be string/)
    await error.click()
    const raw = await page.locator('#errors tr.detail pre').innerText()
    assert.equal((JSON.parse(raw) as { meta: { domain: string } }).meta.domain, hostileValue, 'the event as it was sent, as text')
    assert.equal(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned), undefined)
    assert.equal(await page.locator('#view img').count(), 0)

    // The page follows new events and new errors on its own.
    const errorsBefore = await page.locator('#errors tr.error-event').count()
    assert.equal((await post([valid(6), valid(7), { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 8 }])).status, 207)
    await page.locator('#errors tr.error-event').nth(errorsBefore).waitFor({ timeout: 10_000 })
    const deadline = Date.now() + 15_000
    while (!new RegExp(`^test\\.event\\s+${accepted + 6}\\s+${invalid + 2}`).test(await row.innerText())) {
      assert.ok(Date.now() < deadline, `not updated: ${await row.innerText()}`)
      await page.waitForTimeout(200)
    }
    await page.screenshot({ path: screenshot('console-intake'), fullPage: true })
  })

  test('streams: the rate bars follow events posted while the page is open', async () => {
    await open('#/streams')
    const activity = page.locator('tr[data-stream="test.event"] td.activity')
    await activity.locator('svg').waitFor({ timeout: 10_000 })
    const rate = async () => Number(/([\d.]+)\/s/.exec(await activity.innerText())?.[1])
    const first = await rate()
    assert.equal((await post(Array.from({ length: 30 }, (_, i) => valid(100 + i)))).status, 201)
    const deadline = Date.now() + 15_000
    while ((await rate()) <= first) {
      assert.ok(Date.now() < deadline, `the rate stayed at ${first}/s`)
      await page.waitForTimeout(250)
    }
  })

  test('by default the error stream is not served: the intake page says where the errors are, and shows no refused event', async () => {
    const plain = await serveBundled({ event_log: await testEventLog() })
    // A page of its own: the shared one counts requests to other servers as foreign.
    const page = await browser.newPage()
    page.setDefaultTimeout(15_000)
    page.on('pageerror', (error) => problems.push(`page: ${error.message}`))
    try {
      const response = await fetch(`${plain.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 1, secret: 'not for the public' }) })
      assert.equal(response.status, 400)
      await page.goto(`${plain.url}/#/intake`)
      const note = page.locator('#errors-hidden')
      await note.waitFor({ timeout: 10_000 })
      assert.match(await note.innerText(), /does not serve that stream.*streams\.expose_error_stream: true.*eventplane log tail datacenter1\.eventplane\.error\.validation/s)
      assert.equal(await page.locator('#errors tr').count(), 0)
      assert.ok(!(await page.locator('#view').innerText()).includes('not for the public'))
      // Nor can anyone read it over SSE.
      assert.equal((await fetch(`${plain.url}/v2/stream/eventplane.error.validation?last=5`)).status, 400)
    } finally {
      await page.close()
      await plain.close()
    }
  })

  test('no console errors, nothing from other hosts', () => {
    assert.deepEqual(problems, [])
  })
})

/** A stream config of `streams` streams over a repository of `titles` titles with `versions` versions each. */
function largePlatform(dir: string, streams: number, titles: number, versions: number) {
  const root = join(dir, 'large')
  mkdirSync(root, { recursive: true })
  writeFileSync(join(root, '.jsonschema-tools.yaml'), 'schemaBasePath: ./jsonschema/\ncontentTypes: [yaml]\n')
  for (let t = 0; t < titles; t++) {
    const folder = join(root, 'jsonschema', 'large', `title${t}`)
    mkdirSync(folder, { recursive: true })
    for (let v = 0; v < versions; v++) {
      const properties: Record<string, unknown> = { $schema: { type: 'string' }, meta: { type: 'object', properties: { stream: { type: 'string' }, dt: { type: 'string', format: 'date-time' } } } }
      for (let f = 0; f <= v; f++) properties[`field${f}`] = { type: 'string', description: `added in 1.${f}.0`, maxLength: 100 }
      const schema = { title: `large/title${t}`, $id: `/large/title${t}/1.${v}.0`, $schema: 'https://json-schema.org/draft-07/schema#', type: 'object', required: ['$schema', 'meta'], properties }
      writeFileSync(join(folder, `1.${v}.0.yaml`), stringify(schema))
      if (v === versions - 1) writeFileSync(join(folder, 'current.yaml'), stringify(schema))
    }
  }
  const config: Record<string, unknown> = {}
  for (let i = 0; i < streams; i++) config[`large.stream${String(i).padStart(4, '0')}`] = { schema_title: `large/title${i % titles}`, description: `stream ${i}` }
  const streamsFile = join(dir, 'streams.yaml')
  writeFileSync(streamsFile, stringify({ streams: config }))
  return { repository: root, streams: streamsFile }
}

describe('the console with 1,000 streams and 500 schema versions', { timeout: 120_000 }, () => {
  let server: RunningServer
  let browser: Browser
  before(async () => {
    const large = largePlatform(tempDir(), 1000, 50, 10)
    server = await serveBundled({
      schemas: { repositories: [{ name: 'large', path: large.repository }] },
      stream_config: { source: large.streams, watch: false },
      event_log: await testEventLog(),
    })
    browser = await launchChromium()
  })
  after(async () => {
    await browser?.close()
    await server?.close()
  })

  /** The target for a first render, in ms. */
  const target = 300

  /**
   * Milliseconds from asking for the page to its first view drawn (the console's own
   * measure, performance.now() when the view is in the page), for three loads, and up to
   * three more while none was under the target: the machine is shared, and a burst of other
   * work (a type check, another suite's browser) can slow any one load several times over.
   */
  async function firstRender(hash: string, ready: string): Promise<number[]> {
    const times: number[] = []
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    page.setDefaultTimeout(15_000)
    try {
      for (let i = 0; i < 6 && (i < 3 || Math.min(...times) >= target); i++) {
        await page.goto('about:blank')
        await page.goto(`${server.url}/${hash}`)
        await page.locator(ready).first().waitFor()
        await page.locator('#view[data-first-render-ms]').waitFor()
        times.push(Number(await page.locator('#view').getAttribute('data-first-render-ms')))
        if (process.env['EVENTPLANE_CONSOLE_TIMING']) console.log(`# ${hash}: view ${await page.locator('#view').getAttribute('data-render-ms')} ms`)
      }
      await page.screenshot({ path: screenshot(`console-large${hash.replace(/[#/]+/g, '-')}`) })
    } finally {
      await page.close()
    }
    return times
  }

  test('the streams page lists 1,000 streams, each with its schema versions, first drawn in under 300 ms (best of 3 to 6 loads)', async () => {
    const times = await firstRender('#/streams', 'tr[data-stream="large.stream0999"]')
    console.log(`# streams page, 1,000 streams: first render ${times.join(', ')} ms`)
    assert.ok(Math.min(...times) < target, `first render ${times.join(', ')} ms`)
  })

  test('the schemas page lists 50 titles and their 500 versions, first drawn in under 300 ms (best of 3 to 6 loads)', async () => {
    const times = await firstRender('#/schemas', 'li[data-title="large/title49"]')
    console.log(`# schemas page, 500 versions: first render ${times.join(', ')} ms`)
    assert.ok(Math.min(...times) < target, `first render ${times.join(', ')} ms`)
  })
})
