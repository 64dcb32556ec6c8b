import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { startServer, type RunningServer } from '../../src/server/index.ts'
import { bundledSchemas, cli, repoRoot, tempDir } from '../helpers.ts'

describe('eventplane produce and eventplane log tail', () => {
  const dir = tempDir()
  const config = join(dir, 'eventplane.yaml')
  writeFileSync(
    config,
    stringify({
      server: { port: 0 },
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: join(repoRoot, 'defaults/streams.yaml'), watch: false },
      data_dir: join(dir, 'data'),
    }),
  )
  let server: RunningServer
  before(async () => {
    server = await startServer(loadConfig({ path: config, env: {} }).config, { logger: pino({ level: 'silent' }) })
  })
  after(() => server.close())

  test('produce sends NDJSON and prints one outcome per event', async () => {
    const input = join(dir, 'events.ndjson')
    writeFileSync(
      input,
      [
        JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', test: 'first' }),
        JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', test: 5 }),
        '',
        JSON.stringify({ test: 'third' }),
      ].join('\n'),
    )
    const result = await cli(['produce', 'test.event', input, '--url', server.url, '--schema', '/eventplane/test/event/1.0.0'])
    assert.equal(result.code, 1)
    assert.match(result.stdout, /^#1 accepted$/m)
    assert.match(result.stdout, /^#2 invalid EVP_EVENT_INVALID '\.test' should be string$/m)
    assert.match(result.stdout, /^#3 accepted$/m)
    assert.match(result.stderr, /2 of 3 events accepted; 1 not/)
  })

  test('produce reads a JSON array, in batches; a bad input file is a clear error', async () => {
    const input = join(dir, 'events.json')
    writeFileSync(input, JSON.stringify(Array.from({ length: 5 }, (_, i) => ({ $schema: '/eventplane/test/event/1.0.0', test: `array ${i}` }))))
    const result = await cli(['produce', 'test.event', input, '--url', server.url, '--batch', '2', '--quiet'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /5 of 5 events accepted/)
    writeFileSync(input, '{not json')
    const bad = await cli(['produce', 'test.event', input, '--url', server.url])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /\[EVP_BODY_INVALID_JSON\]/)
    const down = await cli(['produce', 'test.event', join(dir, 'events.ndjson'), '--url', 'http://127.0.0.1:9'])
    assert.equal(down.code, 1)
    assert.match(down.stderr, /cannot reach/)
  })

  test('log tail prints the records of a topic from the beginning, with --meta positions', async () => {
    const result = await cli(['log', 'tail', 'datacenter1.test.event', '--from-beginning', '--no-follow', '--config', config])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stderr, /^reading datacenter1\.test\.event \(1 partition\) from the SQLite file .*events\.sqlite \(config: .*eventplane\.yaml\)$/m)
    assert.equal((await cli(['log', 'tail', 'datacenter1.test.event', '--no-follow', '--quiet', '--config', config])).stderr, '')
    const events = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { test: string })
    assert.deepEqual(
      events.map((e) => e.test),
      ['first', 'third', 'array 0', 'array 1', 'array 2', 'array 3', 'array 4'],
    )
    const meta = await cli(['log', 'tail', 'datacenter1.test.event', '--offset', '1', '--max', '1', '--meta', '--config', config])
    const record = JSON.parse(meta.stdout) as { topic: string; partition: number; offset: number; value: { test: string } }
    assert.equal(record.offset, 1)
    assert.equal(record.value.test, 'third')
    const since = await cli(['log', 'tail', 'datacenter1.test.event', '--since', '2000-01-01T00:00:00Z', '--no-follow', '--config', config])
    assert.equal(since.stdout.trim().split('\n').length, 7)
  })

  test('log tail follows new records', async () => {
    // From now, by time rather than from the end: the end may be looked up after the POST on a
    // loaded machine, and a tail starting past the new record would wait forever.
    const tail = cli(['log', 'tail', 'datacenter1.test.event', '--max', '1', '--since', String(Date.now()), '--config', config])
    const response = await fetch(`${server.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'live' }),
    })
    assert.equal(response.status, 201)
    const result = await tail
    assert.equal((JSON.parse(result.stdout) as { test: string }).test, 'live')
  })

  test('log tail refuses unknown topics and bad options clearly', async () => {
    const unknown = await cli(['log', 'tail', 'nope', '--config', config])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /no topic nope .*datacenter1\.test\.event.*\[EVP_LOG_INVALID_ARGUMENT\]/)
    const both = await cli(['log', 'tail', 'x', '--from-beginning', '--offset', '3', '--config', config])
    assert.equal(both.code, 2)
    const since = await cli(['log', 'tail', 'x', '--since', 'yesterday', '--config', config])
    assert.equal(since.code, 2)
  })
})
