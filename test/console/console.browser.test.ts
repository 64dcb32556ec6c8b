/**
 * The console at / in Chromium, on the bundled config plus a repository of hostile schemas:
 * each page renders with data, links work, markup in schemas renders as text and runs nothing
 * (under the strict CSP), no console errors; screenshots of each page in test-results/.
 */
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { startServer, type RunningServer } from '../../src/server/index.ts'
import { launchChromium, screenshotDir } from '../browser.ts'
import { bundledSchemas, bundledStreams, tempDir } from '../helpers.ts'

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

describe('the console in Chromium', { timeout: 120_000 }, () => {
  let server: RunningServer
  let browser: Browser
  let page: Page
  const problems: string[] = []
  before(async () => {
    const dir = tempDir()
    const file = join(dir, 'eventplane.yaml')
    writeFileSync(
      file,
      stringify({
        server: { port: 0 },
        data_dir: join(dir, 'data'),
        schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }, { name: 'hostile', path: hostileRepository(dir) }] },
        stream_config: { source: bundledStreams, watch: false },
      }),
    )
    const { config } = loadConfig({ path: file, env: {}, cwd: dir })
    server = await startServer(config, { logger: pino({ level: 'silent' }) })
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
    await page.screenshot({ path: join(screenshotDir, 'console-home.png'), fullPage: true })
  })

  test('schemas: titles by repository, a filter, and a version as a field table with its examples', async () => {
    await page.locator('nav a', { hasText: 'Schemas' }).click()
    await page.locator('h1', { hasText: 'Schemas' }).waitFor()
    assert.equal(await page.locator('nav a[aria-current=page]').innerText(), 'Schemas')
    assert.ok((await page.locator('section[data-repository=eventplane] li').count()) >= 10)
    await page.locator('#schema-search').fill('test/ev')
    assert.deepEqual(await page.locator('li[data-title]:visible a').allInnerTexts(), ['test/event'])
    await page.screenshot({ path: join(screenshotDir, 'console-schemas.png'), fullPage: true })

    await page.locator('li[data-title="test/event"] a').click()
    await page.locator('table.fields').waitFor()
    assert.match(await page.locator('h1').innerText(), /^test\/event\s+1\.0\.0$/)
    const stream = page.locator('tr[data-field="meta.stream"]')
    assert.match(await stream.innerText(), /meta\.stream\s+string\s+required/)
    assert.ok((await page.locator('pre').count()) >= 1, 'the example')
    assert.match(await page.locator('pre').first().innerText(), /"\$schema": "\/test\/event\/1\.0\.0"/)
    // Download links serve the version itself.
    const yaml = await page.locator('a', { hasText: 'YAML' }).getAttribute('href')
    assert.equal((await fetch(`${server.url}${yaml}`)).status, 200)
    await page.screenshot({ path: join(screenshotDir, 'console-schema.png'), fullPage: true })
  })

  test('try it: the example posted to a stream that takes the schema gets 201; an invalid one, 400 with the reason', async () => {
    await open('#/schemas/eventplane/test/event')
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
    await page.screenshot({ path: join(screenshotDir, 'console-try.png'), fullPage: true })
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
    await page.screenshot({ path: join(screenshotDir, 'console-diff.png'), fullPage: true })
    // The other way round is not checked: only a newer version against an older one.
    await page.locator('#diff-from').selectOption('1.1.0')
    await page.locator('#diff-to').selectOption('1.0.0')
    await page.locator('.verdict', { hasText: 'not newer' }).waitFor()
  })

  test('streams: every stream with its schema and topics, linked to the live tail', async () => {
    await open('#/streams')
    const row = page.locator('tr[data-stream="test.event"]')
    await row.waitFor({ timeout: 10_000 })
    assert.match(await row.innerText(), /test\.event\s+test\/event\s+datacenter1\.test\.event/)
    assert.equal(await row.locator('a').first().getAttribute('href'), '/v2/ui#streams=test.event')
    await page.screenshot({ path: join(screenshotDir, 'console-streams.png'), fullPage: true })
  })

  test('intake: accepted, invalid and error counts per stream with their bars, updated as events arrive; the streams page shows the rate', async () => {
    const post = (events: unknown[]) => fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
    const valid = (i: number) => ({ $schema: '/test/event/1.0.0', meta: { stream: 'test.event' }, test: `console ${i}` })
    // What earlier tests posted to test.event (try it) counts too.
    const before = (await (await fetch(`${server.url}/v1/intake/recent`)).json()) as { buckets: Array<{ streams: Record<string, { accepted?: number; invalid?: number }> }> }
    const sum = (outcome: 'accepted' | 'invalid') => before.buckets.reduce((n, b) => n + (b.streams['test.event']?.[outcome] ?? 0), 0)
    const [accepted, invalid] = [sum('accepted'), sum('invalid')]
    assert.equal((await post([valid(1), valid(2), valid(3)])).status, 201)
    assert.equal((await post([valid(4), { $schema: '/test/event/1.0.0', meta: { stream: 'test.event' }, test: 5 }])).status, 207)
    await open('#/intake')
    const row = page.locator('tr[data-stream="test.event"]')
    await row.waitFor({ timeout: 10_000 })
    assert.match(await row.innerText(), new RegExp(`^test\\.event\\s+${accepted + 4}\\s+${invalid + 1}\\s+0`))
    assert.ok((await row.locator('svg rect.accepted').count()) >= 1)
    assert.ok((await row.locator('svg rect.invalid').count()) >= 1)
    // The page follows new events on its own.
    assert.equal((await post([valid(6), valid(7)])).status, 201)
    const deadline = Date.now() + 15_000
    while (!new RegExp(`^test\\.event\\s+${accepted + 6}\\s+${invalid + 1}`).test(await row.innerText())) {
      assert.ok(Date.now() < deadline, `not updated: ${await row.innerText()}`)
      await page.waitForTimeout(200)
    }
    await page.screenshot({ path: join(screenshotDir, 'console-intake.png'), fullPage: true })

    await open('#/streams')
    const stream = page.locator('tr[data-stream="test.event"] td.activity')
    await stream.locator('svg').waitFor({ timeout: 10_000 })
    assert.match(await stream.innerText(), /\d+\.\d\d\/s/)
  })

  test('no console errors, nothing from other hosts', () => {
    assert.deepEqual(problems, [])
  })
})
