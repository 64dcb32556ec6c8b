/**
 * `eventplane config check` catches what `serve` would refuse (folders that do not exist, a
 * stream config that does not load, a data folder that cannot be made) and warns of a stream
 * config without the error stream; the intake then says so once, not once per refused event.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { buildApp, openPlatform } from '../../src/server/index.ts'
import { bundledSchemas, cli, tempDir } from '../helpers.ts'

function writeConfig(dir: string, settings: Record<string, unknown>): string {
  const file = join(dir, 'eventplane.yaml')
  writeFileSync(file, stringify(settings))
  return file
}

test('config check exits 1 naming each thing serve would refuse, with its key and code', async () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'a-file'), 'not a folder')
  const config = writeConfig(dir, {
    schemas: { repositories: [{ name: 'primary', path: '../no-such-repository' }] },
    stream_config: { source: './no-such-streams.yaml' },
    data_dir: './a-file/data',
  })
  const r = await cli(['config', 'check', '--config', config])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^error: schemas\.repositories: schema repository folder .*no-such-repository does not exist \[EVP_REPOSITORY_NOT_FOUND\]$/m)
  assert.match(r.stderr, /^error: stream_config\.source: cannot read stream config .*no-such-streams\.yaml: ENOENT \[EVP_STREAM_CONFIG_UNAVAILABLE\]$/m)
  assert.match(r.stderr, /^error: event_log\.path: .*a-file is not a folder, so .*events\.sqlite cannot be made \[EVP_LOG_UNAVAILABLE\]$/m)
  assert.match(r.stderr, /serve would not start \(3 errors\)/)
  assert.equal(r.stdout, '')
  // Kafka without brokers is serve's refusal too.
  const kafka = writeConfig(tempDir(), { event_log: { backend: 'kafka' } })
  assert.match((await cli(['config', 'check', '--config', kafka])).stderr, /^error: event_log\.kafka\.brokers: .*no brokers are set/m)
})

test('a stream config without the error stream: config check warns and passes; the intake counts and says it once', async () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'streams.yaml'), stringify({ streams: { 'test.event': { schema_title: 'eventplane/test/event' } } }))
  const file = writeConfig(dir, { schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] }, stream_config: { source: './streams.yaml', watch: false }, data_dir: './data' })
  const checked = await cli(['config', 'check', '--config', file])
  assert.equal(checked.code, 0, checked.stderr)
  assert.match(checked.stderr, /^warning: intake\.error_stream: eventplane\.error\.validation is not in the stream config .*streams\.yaml: refused events get no error events\. Add the stream .* or set intake\.error_stream: null \[EVP_STREAM_NOT_ALLOWED\]$/m)
  assert.match(checked.stdout, /valid \(1 warning\)/)

  const lines: Array<{ level: number; msg: string }> = []
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string })
        done()
      },
    }),
  )
  const { config } = loadConfig({ path: file, env: {}, cwd: dir })
  const platform = await openPlatform(config, { logger })
  const app = await buildApp(platform)
  try {
    for (let i = 0; i < 3; i++) {
      const answer = await app.inject({ method: 'POST', url: '/v1/events', payload: [{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: i }] })
      assert.equal(answer.statusCode, 400)
    }
    await platform.intake!.close()
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /eventplane_intake_error_events_total\{outcome="no_stream"\} 3/)
    const told = lines.filter((l) => /intake\.error_stream eventplane\.error\.validation is not in the stream config/.test(l.msg))
    assert.equal(told.length, 1)
    assert.equal(told[0]!.level, 40, 'a warning')
    assert.equal(lines.filter((l) => l.level >= 50).length, 0, 'no error lines')
  } finally {
    await app.close()
    await platform.close()
  }
})
