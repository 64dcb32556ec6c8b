/**
 * Canary events: `eventplane canary` against a real server on the bundled stream config (plus
 * one stream whose schema has no example), intakes that refuse or do not answer, and `serve`
 * sending them on its schedule.
 */
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { parse, stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { startServer } from '../../src/server/index.ts'
import { bundledSchemas, bundledStreams, cli, repoRoot, tempDir, writeBundledConfig } from '../helpers.ts'
import { eventually, testPlatform, type TestPlatform } from '../intake/helpers.ts'

const bundled = parse(readFileSync(bundledStreams, 'utf8')) as { defaults: Record<string, unknown>; streams: Record<string, Record<string, unknown>> }
/** Named streams of the bundled config that get canaries. */
const enabled = Object.entries(bundled.streams)
  .filter(([name, settings]) => !name.startsWith('/') && (settings['canary_events_enabled'] ?? bundled.defaults['canary_events_enabled']) === true)
  .map(([name]) => name)

let dir: string
let configFile: string
let platform: TestPlatform
let url: string

before(async () => {
  dir = tempDir()
  // A repository with a schema that has no example.
  const extra = join(dir, 'extra', 'noexample', 'event')
  mkdirSync(extra, { recursive: true })
  const schema = stringify({ title: 'noexample/event', $id: '/noexample/event/1.0.0', $schema: 'https://json-schema.org/draft-07/schema#', type: 'object', properties: { $schema: { type: 'string' }, meta: { type: 'object' } } })
  for (const name of ['1.0.0.yaml', 'latest.yaml']) writeFileSync(join(extra, name), schema)
  const streams = join(dir, 'streams.yaml')
  writeFileSync(streams, stringify({ ...bundled, streams: { ...bundled.streams, 'noexample.event': { schema_title: 'noexample/event' } } }))
  const settings = {
    schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }, { name: 'extra', path: join(dir, 'extra') }] },
    stream_config: { source: streams, watch: false },
  }
  configFile = join(dir, 'eventplane.yaml')
  writeFileSync(configFile, stringify({ ...settings, data_dir: join(dir, 'cli-data') }))
  platform = await testPlatform(settings)
  url = await platform.app.listen({ host: '127.0.0.1', port: 0 })
})
after(async () => {
  await platform?.close()
})

const canariesIn = async (topic: string) => (await platform.events(topic)).filter((e) => (e['meta'] as { domain?: string }).domain === 'canary')

test('canary: every canary-enabled bundled stream gets exactly one canary per run; a schema without example is reported, not crashed on', async () => {
  assert.ok(enabled.length >= 5, `bundled streams with canaries: ${enabled.join(', ')}`)
  const result = await cli(['canary', '--config', configFile, '--url', url])
  assert.equal(result.code, 1, 'one stream got none')
  assert.match(result.stdout, /^noexample\.event\tskipped\tthe latest schema of noexample\/event \(\/noexample\/event\/1\.0\.0\) has no example to send$/m)
  assert.match(result.stderr, new RegExp(`${enabled.length} of ${enabled.length + 1} streams got a canary`))
  for (const stream of enabled) {
    assert.match(result.stdout, new RegExp(`^${stream.replace(/\./g, '\\.')}\tsent\t.*: 201$`, 'm'))
    const topic = stream.startsWith('eventlogging_') ? stream : `datacenter1.${stream}`
    await eventually(async () => (await canariesIn(topic)).length === 1)
    const [canary] = await canariesIn(topic)
    const meta = canary!['meta'] as { stream: string; dt: string; id: string }
    assert.equal(meta.stream, stream)
    assert.ok(Math.abs(Date.parse(meta.dt) - Date.now()) < 60_000, `${stream}: meta.dt set by the intake, not the example's`)
    assert.match(meta.id, /^[0-9a-f-]{36}$/)
  }
  assert.equal((await canariesIn('datacenter1.eventplane.error.validation')).length, 0)
  assert.equal((await platform.events('datacenter1.eventplane.error.validation')).length, 0, 'no canary was refused')
  // A second run: one more each, no more.
  assert.equal((await cli(['canary', 'test.event', '--config', configFile, '--url', url])).code, 0)
  await eventually(async () => (await canariesIn('datacenter1.test.event')).length === 2)
})

test('canary: --dry-run prints the canaries and sends nothing; streams that are not named, or regex keys, are reported', async () => {
  const before = (await canariesIn('datacenter1.mediawiki.page-delete')).length
  const result = await cli(['canary', 'mediawiki.page-delete', 'nope', '/^test\\.event\\..+$/', '--config', configFile, '--url', url, '--dry-run'])
  assert.equal(result.code, 1)
  const [line, ...rest] = result.stdout.trim().split('\n')
  assert.deepEqual(rest, [])
  const event = JSON.parse(line!) as { meta: Record<string, unknown>; $schema: string }
  assert.deepEqual(event.meta, { stream: 'mediawiki.page-delete', domain: 'canary', ...(event.meta['uri'] ? { uri: event.meta['uri'] } : {}), ...(event.meta['request_id'] ? { request_id: event.meta['request_id'] } : {}) })
  assert.match(event.$schema, /^\/eventplane\/mediawiki\/page\/delete\/\d+\.\d+\.\d+$/)
  assert.match(result.stderr, /nope: no canary: no such stream in the stream config/)
  assert.match(result.stderr, /test\\\.event\\\.\.\+\$\/: no canary: a \/regex\/ key configures it/)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal((await canariesIn('datacenter1.mediawiki.page-delete')).length, before)
})

test('canary: only 201 and 202 count; a refusal or no answer is reported with the reason; bad --url is a usage error', async () => {
  let status = 200
  const intake = createServer((_request, response) => {
    if (status === 400) return response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ invalid: [{ status: 'invalid', context: { code: 'EVP_EVENT_INVALID', message: "'.test' should be string" } }] }))
    response.writeHead(status).end()
  })
  await new Promise<void>((resolve) => intake.listen(0, '127.0.0.1', resolve))
  const other = `http://127.0.0.1:${(intake.address() as AddressInfo).port}`
  try {
    const ok200 = await cli(['canary', 'test.event', '--config', configFile, '--url', other])
    assert.equal(ok200.code, 1)
    assert.match(ok200.stdout, /^test\.event\tfailed\t.*: 200 OK$/m)
    status = 400
    const refused = await cli(['canary', 'test.event', '--config', configFile, '--url', other])
    assert.match(refused.stdout, /^test\.event\tfailed\t.*: 400 EVP_EVENT_INVALID: '\.test' should be string$/m)
    status = 202
    assert.equal((await cli(['canary', 'test.event', '--config', configFile, '--url', other])).code, 0, '202 counts')
  } finally {
    intake.close()
  }
  const down = await cli(['canary', 'test.event', '--config', configFile, '--url', 'http://127.0.0.1:9'])
  assert.equal(down.code, 1)
  assert.match(down.stdout, /^test\.event\tfailed\thttp:\/\/127\.0\.0\.1:9\/v1\/events: no answer: /m)
  const usage = await cli(['canary', '--config', configFile, '--url', 'ftp://x'])
  assert.equal(usage.code, 2)
  assert.match(usage.stderr, /--url must be an http\(s\) URL/)
})

test('canary: serve sends them every canary.interval_s, and not with 0', async () => {
  for (const interval of [1, 0]) {
    const file = writeBundledConfig(tempDir(), { server: { port: 0 }, canary: { interval_s: interval } })
    const { config } = loadConfig({ path: file, env: {}, cwd: repoRoot })
    const server = await startServer(config, { logger: pino({ level: 'silent' }) })
    try {
      const canaries = async () => {
        const text = await (await fetch(`${server.url}/metrics`)).text()
        return Number(/^eventplane_intake_events_total\{stream="test\.event",schema="[^"]*",outcome="accepted"\} (\d+)$/m.exec(text)?.[1] ?? 0)
      }
      if (interval === 1) await eventually(async () => (await canaries()) >= 1, 5000)
      else {
        await new Promise((resolve) => setTimeout(resolve, 1500))
        assert.equal(await canaries(), 0, 'none with interval_s 0')
      }
    } finally {
      await server.close()
    }
  }
})
