/**
 * docs/sdk.md's examples, run as written against the platform with its bundled schemas and
 * stream config (what `npm start` serves): the HTML page and the browser snippets in Chromium,
 * in the order the page gives them; the Node.js snippets with `node`. Only the addresses are
 * changed (the docs' intake and `localhost:8192` become this test's server, and the package
 * name its source). Every example block of the page must be run by one of the two, so that a
 * new example cannot go untested.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium } from '../browser.ts'
import { bundledStreams, codeBlocks, repoRoot, tempDir } from '../helpers.ts'
import { eventually, testPlatform, type TestPlatform } from '../intake/helpers.ts'
import { bundleScript, serveSite, type Site } from './site.ts'

const blocks = codeBlocks(readFileSync(join(repoRoot, 'docs/sdk.md'), 'utf8'))
const page = blocks.filter((b) => b.lang === 'html')
const node = blocks.filter((b) => b.lang === 'js' && b.code.includes("from '@eventplane/client'") && !/^\s*\/\//.test(b.code))
const browserSnippets = blocks.filter((b) => b.lang === 'js' && !node.includes(b))

let platform: TestPlatform
let intake: string
let site: Site
let browser: Browser

before(async () => {
  // The bundled stream config, as `npm start` serves it.
  platform = await testPlatform({ stream_config: { source: bundledStreams, watch: false } })
  intake = await platform.app.listen({ host: '127.0.0.1', port: 0 })
  const html = page[0]!.code.replaceAll('https://events.example.org', intake)
  site = await serveSite(
    new Map([
      ['/eventplane.min.js', { type: 'text/javascript', body: await bundleScript() }],
      ['/page.html', { type: 'text/html', body: `<!doctype html><title>docs/sdk.md</title>\n${html}` }],
      // Asked for by the browser; a 404 would show as a console error.
      ['/favicon.ico', { type: 'image/x-icon', body: '' }],
    ]),
  )
  browser = await launchChromium()
})
after(async () => {
  await browser?.close()
  site?.close()
  await platform?.close()
})

test('docs/sdk.md: every example block is run by a test below', () => {
  assert.equal(page.length, 1, 'one HTML page')
  assert.ok(browserSnippets.length >= 3 && node.length >= 1, `found ${browserSnippets.length} browser snippets and ${node.length} Node.js ones`)
  assert.equal(page.length + browserSnippets.length + node.length, blocks.length, `blocks of other languages: ${blocks.filter((b) => !['html', 'js'].includes(b.lang)).map((b) => `line ${b.line} (${b.lang || 'none'})`)}`)
})

test('docs/sdk.md: the page and the browser snippets, in order: every event they send arrives, none is refused or dropped', async () => {
  const context = await browser.newContext()
  try {
    const tab = await context.newPage()
    const problems: string[] = []
    tab.on('pageerror', (error) => problems.push(`error: ${error.message}`))
    tab.on('console', (message) => {
      if (message.type() === 'warning' || message.type() === 'error') problems.push(`${message.type()}: ${message.text()}`)
    })
    await tab.goto(`${site.url}/page.html`)
    // Each snippet as a module of the page: it sees the page's `client`, and may use await.
    for (const snippet of browserSnippets) await tab.addScriptTag({ type: 'module', content: `${snippet.code}\n;window.ran = (window.ran ?? 0) + 1` })
    await eventually(async () => (await tab.evaluate(() => (globalThis as unknown as { ran?: number }).ran)) === browserSnippets.length, 5000)
    // The page's `const client` is a global binding, not a property of window: handed over.
    await tab.addScriptTag({ content: 'window.client = client' })
    await tab.evaluate(async () => {
      const client = (globalThis as unknown as { client?: { ready: Promise<void>; transport: { flush(): Promise<void> } } }).client
      if (client === undefined) throw new Error('the page made no global `client`')
      await client.ready
      await client.transport.flush()
    })
    const has = async (topic: string, match: (e: Record<string, unknown>) => boolean) => (await platform.events(topic)).some(match)
    await eventually(async () => has('datacenter1.test.event', (e) => e['test'] === 'hello'), 10_000)
    await eventually(async () => has('datacenter1.product_metrics.web_base', (e) => e['action'] === 'click' && e['element_id'] === 'save'), 10_000)
    await eventually(async () => has('datacenter1.product_metrics.web_base', (e) => e['instrument_name'] === 'edit-toolbar' && e['funnel_event_sequence_position'] === 2), 10_000)
    await eventually(async () => has('eventlogging_EventplaneTest', (e) => (e['event'] as { action?: string }).action === 'hello' && e['schema'] === 'EventplaneTest'), 10_000)
    assert.equal((await platform.events('datacenter1.eventplane.error.validation')).length, 0, 'no event was refused')
    const dropped = await tab.evaluate(() => {
      const client = (globalThis as unknown as { client: { dropped: Record<string, number>; transport: { dropped: Record<string, number> } } }).client
      return { client: client.dropped, transport: client.transport.dropped }
    })
    assert.deepEqual(dropped, { client: {}, transport: {} }, 'nothing dropped')
    assert.deepEqual(problems, [], 'no warnings or errors on the page')
  } finally {
    await context.close()
  }
})

test('docs/sdk.md: the Node.js snippets run with node, and the producer example puts its event in the log', { timeout: 60_000 }, async () => {
  const dir = tempDir()
  // The browser's test.event has meta.domain (the page's host); the producer's has none.
  const fromNode = async () => (await platform.events('datacenter1.test.event')).filter((e) => e['test'] === 'hello' && (e['meta'] as { domain?: string }).domain === undefined).length
  const before = await fromNode()
  for (const [i, snippet] of node.entries()) {
    const file = join(dir, `snippet-${i}.mjs`)
    writeFileSync(file, snippet.code.replaceAll("'@eventplane/client'", JSON.stringify(join(repoRoot, 'packages/client/src/index.ts'))).replaceAll('http://localhost:8192', intake))
    // Not spawnSync: the intake answering it runs in this process.
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', file], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr }))
    })
    assert.equal(run.code, 0, `docs/sdk.md line ${snippet.line}: exit ${run.code}\n${run.stdout}\n${run.stderr}`)
    assert.equal(run.stderr, '', `docs/sdk.md line ${snippet.line} printed to stderr (refusals):\n${run.stderr}`)
  }
  await eventually(async () => (await fromNode()) === before + 1, 10_000)
})
