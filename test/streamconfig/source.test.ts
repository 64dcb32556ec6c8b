import assert from 'node:assert/strict'
import { renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, afterEach, describe, it } from 'node:test'
import { Registry } from 'prom-client'
import { isEventplaneError } from '../../src/core/errors.ts'
import { openStreamConfig, type StreamConfigSource } from '../../src/streamconfig/index.ts'
import { captureLogger, tempDir, waitFor } from './helpers.ts'

const v1 = 'streams:\n  a: {schema_title: one}\n'
const v2 = 'streams:\n  a: {schema_title: two}\n  b: {schema_title: bee}\n'
const v3 = 'streams:\n  a: {schema_title: three}\n'
const broken = 'streams:\n  a: {sample: {rate: 2}}\n'

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const json = await registry.getMetricsAsJSON()
  const found = json.find((m) => m.name === name)
  const value = found?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
  return value?.value
}

describe('openStreamConfig with a file', () => {
  const temp = tempDir()
  const open: StreamConfigSource[] = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()))
  })
  after(() => temp.cleanup())

  async function start(name: string, text: string, watch = true) {
    const file = temp.write(name, text)
    const { logger, lines } = captureLogger()
    const registry = new Registry()
    const source = await openStreamConfig({ source: file, watch, debounceMs: 30, logger, registry })
    open.push(source)
    return { file, source, lines, registry }
  }

  it('loads at start and sets the metrics', async () => {
    const { source, registry } = await start('start.yaml', v2)
    assert.equal(source.current().lookup('b')?.schema_title, 'bee')
    assert.equal(source.current().generation, 1)
    assert.ok(Object.isFrozen(source.current()))
    assert.equal(await metric(registry, 'eventplane_stream_config_streams'), 2)
    assert.equal(await metric(registry, 'eventplane_stream_config_last_reload_success'), 1)
    assert.equal(await metric(registry, 'eventplane_stream_config_reloads_total', { result: 'error' }), 0)
    const loadedAt = await metric(registry, 'eventplane_stream_config_loaded_timestamp_seconds')
    assert.ok(loadedAt !== undefined && Math.abs(loadedAt - Date.now() / 1000) < 60)
  })

  it('a bad file at start is a thrown error', async () => {
    const file = temp.write('bad-start.yaml', broken)
    const { logger } = captureLogger()
    await assert.rejects(
      openStreamConfig({ source: file, logger, registry: new Registry() }),
      (e) => isEventplaneError(e) && e.code === 'EVP_STREAM_CONFIG_INVALID',
    )
    await assert.rejects(
      openStreamConfig({ source: join(temp.dir, 'missing.yaml'), logger, registry: new Registry() }),
      (e) => isEventplaneError(e) && e.code === 'EVP_STREAM_CONFIG_UNAVAILABLE',
    )
  })

  it('reloads when the file is written', async () => {
    const { file, source, registry } = await start('written.yaml', v1)
    writeFileSync(file, v2)
    await waitFor(() => source.current().lookup('a')?.schema_title === 'two')
    assert.equal(source.current().generation, 2)
    assert.equal(await metric(registry, 'eventplane_stream_config_streams'), 2)
    await waitFor(async () => (await metric(registry, 'eventplane_stream_config_reloads_total', { result: 'ok' }))! >= 1)
  })

  it('reloads when a new file is renamed over the old one, and keeps watching', async () => {
    const { file, source } = await start('renamed.yaml', v1)
    const tmp = join(temp.dir, '.renamed.yaml.tmp')
    writeFileSync(tmp, v2)
    renameSync(tmp, file)
    await waitFor(() => source.current().lookup('a')?.schema_title === 'two')
    writeFileSync(tmp, v3)
    renameSync(tmp, file)
    await waitFor(() => source.current().lookup('a')?.schema_title === 'three')
  })

  it('keeps the last good config when the changed file is bad, logs the code, and shows it in the metrics', async () => {
    const { file, source, lines, registry } = await start('bad-change.yaml', v1)
    const before = source.current()
    writeFileSync(file, broken)
    await waitFor(async () => (await metric(registry, 'eventplane_stream_config_reloads_total', { result: 'error' }))! >= 1)
    assert.equal(source.current(), before)
    assert.equal(source.current().lookup('a')?.schema_title, 'one')
    assert.equal(await metric(registry, 'eventplane_stream_config_last_reload_success'), 0)
    const logged = lines.find((line) => line['code'] === 'EVP_STREAM_CONFIG_INVALID')
    assert.ok(logged, JSON.stringify(lines))
    assert.equal(logged['level'], 50)

    writeFileSync(file, v3)
    await waitFor(() => source.current().lookup('a')?.schema_title === 'three')
    assert.equal(await metric(registry, 'eventplane_stream_config_last_reload_success'), 1)
  })

  it('reload() loads now, and a failed reload() keeps the last good config', async () => {
    const { file, source, registry } = await start('explicit.yaml', v1, false)
    writeFileSync(file, v2)
    const ok = await source.reload()
    assert.ok(ok.ok && ok.changed)
    assert.equal(source.current().lookup('a')?.schema_title, 'two')

    writeFileSync(file, broken)
    const failed = await source.reload()
    assert.equal(failed.ok, false)
    assert.equal(!failed.ok && failed.error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.equal(source.current().lookup('a')?.schema_title, 'two')
    assert.equal(await metric(registry, 'eventplane_stream_config_last_reload_success'), 0)
    assert.equal(await metric(registry, 'eventplane_stream_config_reloads_total', { result: 'error' }), 1)

    unlinkSync(file)
    const missing = await source.reload()
    assert.equal(!missing.ok && missing.error.code, 'EVP_STREAM_CONFIG_UNAVAILABLE')
    assert.equal(source.current().lookup('b')?.schema_title, 'bee')
    assert.equal(await metric(registry, 'eventplane_stream_config_reloads_total', { result: 'error' }), 2)
  })

  it('an unchanged or comment-only change keeps the generation (and so the ETag)', async () => {
    const { file, source } = await start('same.yaml', v1, false)
    const first = source.current()
    assert.deepEqual(await source.reload(), { ok: true, changed: false, config: first })
    writeFileSync(file, '# a comment\n' + v1)
    const result = await source.reload()
    assert.ok(result.ok && !result.changed)
    assert.equal(source.current(), first)
  })

  it('concurrent reload() calls share loads', async () => {
    const { file, source } = await start('concurrent.yaml', v1, false)
    writeFileSync(file, v2)
    const results = await Promise.all([source.reload(), source.reload(), source.reload()])
    assert.ok(results.every((r) => r.ok))
    assert.equal(source.current().generation, 2)
    assert.equal(results[1], results[2])
  })

  it('close() stops watching and removes the metrics', async () => {
    const { file, source, registry } = await start('closed.yaml', v1)
    await source.close()
    assert.equal(await metric(registry, 'eventplane_stream_config_streams'), undefined)
    writeFileSync(file, v2)
    await new Promise((resolve) => setTimeout(resolve, 150))
    assert.equal(source.current().lookup('a')?.schema_title, 'one')
    assert.equal((await source.reload()).ok, false)
  })
})

describe('openStreamConfig with a URL', () => {
  let body = v1
  let status = 200
  let delayMs = 0
  let requests = 0
  let server: Server
  let url = ''
  const open: StreamConfigSource[] = []

  it('starts a real HTTP server', async () => {
    server = createServer((_request, response) => {
      requests++
      setTimeout(() => {
        response.writeHead(status, { 'content-type': 'application/yaml' })
        response.end(body)
      }, delayMs)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/streams.yaml`
  })

  after(async () => {
    await Promise.all(open.map((s) => s.close()))
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('fetches at start and again every refreshIntervalS, keeping the last good config on errors', async () => {
    const { logger, lines } = captureLogger()
    const registry = new Registry()
    const source = await openStreamConfig({ source: url, refreshIntervalS: 1, logger, registry })
    open.push(source)
    assert.equal(source.current().lookup('a')?.schema_title, 'one')

    body = v2
    await waitFor(() => source.current().lookup('a')?.schema_title === 'two', 3000)

    status = 500
    const failed = await source.reload()
    assert.equal(!failed.ok && failed.error.code, 'EVP_STREAM_CONFIG_UNAVAILABLE')
    assert.equal(source.current().lookup('a')?.schema_title, 'two')
    assert.equal(await metric(registry, 'eventplane_stream_config_last_reload_success'), 0)
    assert.ok(lines.some((line) => line['code'] === 'EVP_STREAM_CONFIG_UNAVAILABLE'))
    status = 200
  })

  it('times out a slow fetch', async () => {
    const { logger } = captureLogger()
    const source = await openStreamConfig({ source: url, refreshIntervalS: 3600, timeoutMs: 200, logger, registry: new Registry() })
    open.push(source)
    delayMs = 1000
    const before = requests
    const result = await source.reload()
    delayMs = 0
    assert.ok(requests > before)
    assert.equal(!result.ok && result.error.code, 'EVP_STREAM_CONFIG_UNAVAILABLE')
    assert.match(!result.ok ? result.error.message : '', /timed out after 200 ms/)
  })
})
