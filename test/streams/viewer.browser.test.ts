import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { launchChromium, screenshot } from '../browser.ts'
import { produce, sseServer, testEvent } from './helpers.ts'

describe('the live tail (/v2/ui, the console at #/tail) in Chromium', () => {
  let s: Awaited<ReturnType<typeof sseServer>>
  let browser: Browser
  let page: Page
  const foreign: string[] = []
  const problems: string[] = []
  before(async () => {
    s = await sseServer()
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
    page.on('request', (request) => {
      if (!request.url().startsWith(s.url)) foreign.push(request.url())
    })
    page.on('console', (message) => {
      // The browser reports the 400 that the refused filter asks for on purpose.
      const expected = message.location().url.includes('/v2/stream/') && message.text().includes('status of 400')
      if (message.type() === 'error' && !expected) problems.push(`console: ${message.text()}`)
    })
    page.on('pageerror', (error) => problems.push(`page: ${error.message}`))
  })
  after(async () => {
    await browser?.close()
    await s?.close()
  })

  const rows = () => page.locator('#events tbody tr.event')

  test('shows live events as they are posted, with their rate, and keeps a screenshot', async () => {
    await page.goto(`${s.url}/v2/ui`)
    // The list of streams comes from /?spec.
    await page.locator('input[name=stream][value="test.event"]').check()
    // The error stream is configured but not served (streams.expose_error_stream is off).
    assert.equal(await page.locator('input[name=stream]').count(), 4, 'test.event, test-alias, other.event, mediawiki.recentchange')
    await page.locator('#connect').click()
    await page.locator('#state[data-state=open]').waitFor({ timeout: 10_000 })
    for (let i = 0; i < 5; i++) await produce(s.url, [testEvent(`live ${i}`)])
    await eventually(async () => (await rows().count()) === 5, 'five rows')
    // Newest first, with stream and position.
    assert.match(await rows().first().innerText(), /test\.event\s+0\/4\s+test: live 4/)
    assert.match(await rows().last().innerText(), /test: live 0/)
    await eventually(async () => Number(await page.locator('#rate').innerText()) > 0, 'a rate')
    assert.equal(await page.locator('#received').innerText(), '5')
    // A click shows the whole event, with the meta fields the server adds.
    await rows().first().click()
    const detail = await page.locator('#events tr.detail').innerText()
    assert.match(detail, /"topic": "datacenter1\.test\.event"/)
    assert.match(page.url(), /\/#\/tail\?streams=test\.event$/, 'the console opens its tail at /v2/ui, and the choice is in the address, so the view can be shared')
    await page.screenshot({ path: screenshot('streams-viewer'), fullPage: true })
  })

  test('pause holds events, resume shows them', async () => {
    await page.locator('#pause').click()
    await produce(s.url, [testEvent('held 1'), testEvent('held 2')])
    await eventually(async () => (await page.locator('#held').innerText()) === '2', 'two held')
    assert.equal(await rows().count(), 5, 'nothing new is shown while paused')
    await page.locator('#pause').click()
    await eventually(async () => (await rows().count()) === 7, 'seven rows')
    assert.match(await rows().first().innerText(), /held 2/)
  })

  test('markup in event values and stream names is shown as text and runs nothing; Enter opens an event', async () => {
    const markup = '</script><img src=x onerror="window.pwned = 1"><b>bold</b>'
    await produce(s.url, [testEvent(markup)])
    await eventually(async () => (await rows().first().innerText()).includes(markup), 'the event with markup, as text')
    await rows().first().focus()
    await page.keyboard.press('Enter')
    assert.ok((await page.locator('#events tr.detail').first().innerText()).includes(JSON.stringify(markup).slice(1, -1)))
    assert.equal(await page.locator('#events img, #events b, #events script').count(), 0)
    assert.equal(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned), undefined)
  })

  test('a filter runs on the server; a refused one shows why', async () => {
    await page.locator('#connect').click() // disconnect
    await page.locator('#clear').click()
    await page.locator('#filter').fill('test == "wanted"')
    await page.locator('#connect').click()
    await page.locator('#state[data-state=open]').waitFor({ timeout: 10_000 })
    await produce(s.url, [testEvent('unwanted'), testEvent('wanted'), testEvent('unwanted')])
    await eventually(async () => (await rows().count()) >= 1, 'a row')
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(await rows().count(), 1)
    assert.match(await rows().first().innerText(), /test: wanted/)

    await page.locator('#connect').click()
    await page.locator('#filter').fill('test ==')
    await page.locator('#connect').click()
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 })
    assert.match(await page.locator('#error').innerText(), /400 EVP_FILTER_INVALID/)
    assert.deepEqual(foreign, [], 'the page loads nothing from other hosts')
    assert.deepEqual(problems, [], 'no errors in the console')
  })
})

/** Polls a check of the page until it holds (the page's CSP forbids evaluating strings in it). */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
