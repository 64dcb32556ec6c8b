import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { runCli } from '../../src/cli/main.ts'
import { parseSinceOption } from '../../src/cli/tail.ts'
import { parseSse } from '../../src/streams/index.ts'
import { Capture, cli } from '../helpers.ts'
import { produce, sseServer, testEvent, until } from './helpers.ts'

describe('eventplane tail', () => {
  let s: Awaited<ReturnType<typeof sseServer>>
  before(async () => {
    s = await sseServer({ server: { port: await freePort() } })
  })
  after(() => s.close())

  const lines = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { test: string; meta: { offset: number } })

  test('replays with --since, stops after --max, and prints the id to go on from; --last-event-id goes on exactly there', async () => {
    const start = Date.now()
    await produce(s.url, ['a', 'b', 'c', 'd'].map((t) => testEvent(t)))
    const first = await cli(['tail', 'test.event', '--url', s.url, '--since', String(start - 1000), '--max', '2'])
    assert.equal(first.code, 0, first.stderr)
    assert.deepEqual(lines(first.stdout).map((e) => e.test), ['a', 'b'])
    assert.match(first.stderr, /connected to http:\/\/.*\/v2\/stream\/test\.event\?since=/)
    const id = /--last-event-id '(.+)'/.exec(first.stderr)![1]!
    const next = await cli(['tail', 'test.event', '--url', s.url, '--last-event-id', id, '--max', '2', '--quiet'])
    assert.deepEqual(lines(next.stdout).map((e) => e.test), ['c', 'd'])
    assert.equal(next.stderr, '')
    // --last: the last events of each partition, then live.
    const last = await cli(['tail', 'test.event', '--url', s.url, '--last', '2', '--max', '2', '--quiet'])
    assert.deepEqual(lines(last.stdout).map((e) => e.test), ['c', 'd'])
  })

  test('after the server restarts it reconnects and resumes: nothing missed, nothing twice', async () => {
    const stdout = new Capture()
    const stderr = new Capture()
    const running = runCli(['tail', 'test.event', '--url', s.url, '--match', 'test=restart', '--max', '4'], { stdout, stderr, cwd: process.cwd(), env: {} })
    await until(() => /connected/.test(stderr.text), 5000, 'connected')
    await produce(s.url, [testEvent('restart'), testEvent('other'), testEvent('restart')])
    await until(() => lines(stdout.text).length === 2, 5000, 'two events before the restart')
    await s.restart()
    await produce(s.url, [testEvent('restart'), testEvent('restart')])
    assert.equal(await running, 0)
    const received = lines(stdout.text)
    assert.equal(received.length, 4)
    const offsets = received.map((e) => e.meta.offset)
    assert.equal(new Set(offsets).size, 4, `no duplicates: ${offsets.join(',')}`)
    assert.ok(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!), `in order: ${offsets.join(',')}`)
    assert.match(stderr.text, /reconnecting in/)
    assert.match(stderr.text, /\(resuming\)/)
  })

  test('a refused request is exit 1 with the server code; bad options are exit 2', async () => {
    const unknown = await cli(['tail', 'nope', '--url', s.url])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /EVP_STREAM_UNKNOWN/)
    const last = await cli(['tail', 'test.event', '--url', s.url, '--last', '0'])
    assert.equal(last.code, 1)
    assert.match(last.stderr, /EVP_LAST_INVALID/)
    const filter = await cli(['tail', 'test.event', '--url', s.url, '--filter', 'test =='])
    assert.equal(filter.code, 1)
    assert.match(filter.stderr, /EVP_FILTER_INVALID/)
    for (const args of [[], ['test.event', '--since', 'yesterday-ish'], ['test.event', '--match', 'novalue'], ['test.event', '--max', '0'], ['test.event', '--since', '1m', '--last', '3'], ['test.event', '--url', 'ftp://x']]) {
      const bad = await cli(['tail', ...args])
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`)
      assert.match(bad.stderr, /EVP_CLI_USAGE/)
    }
  })
})

test('--since takes epoch ms, ISO-8601 and durations ago', () => {
  const now = Date.parse('2026-01-01T12:00:00Z')
  assert.equal(parseSinceOption('10m', now), now - 600_000)
  assert.equal(parseSinceOption('2h', now), now - 7_200_000)
  assert.equal(parseSinceOption('1700000000000', now), 1700000000000)
  assert.equal(parseSinceOption('2026-01-01T00:00:00Z', now), Date.parse('2026-01-01T00:00:00Z'))
})

test('the SSE parser follows the HTML standard: CRLF, CR, split chunks, multi-line data, comments, ids', async () => {
  const chunks = [':ok\r\n\r\nretry: 1500\n\nevent: message\nid: 1\ndata: {"a":\r', '\ndata: 1}\r\rdata: x\n', 'id: bad\0id\n\n', 'event: error\ndata: oops\n\n', ': comment\ndata: tail']
  const body = (async function* () {
    for (const chunk of chunks) yield new TextEncoder().encode(chunk)
  })()
  const events = []
  for await (const event of parseSse(body)) events.push(event)
  assert.deepEqual(events, [
    { event: 'retry', data: '1500', lastEventId: '' },
    { event: 'message', data: '{"a":\n1}', lastEventId: '1' },
    { event: 'message', data: 'x', lastEventId: '1' },
    { event: 'error', data: 'oops', lastEventId: '1' },
  ])
})

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}
