import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { repoRoot, spawnServer, tempDir } from '../helpers.ts'

/** `eventplane serve` on a free port, with its own data folder and info logs. */
const serve = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnServer(args, { EVENTPLANE_LOG_LEVEL: 'info', EVENTPLANE_DATA_DIR: tempDir(), ...env })

test('serve answers on its port, and SIGTERM drains and exits 0', async () => {
  const { child, url } = await serve([])
  const response = await fetch(`${url}/healthz`)
  assert.equal(response.status, 200)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})

test('SIGTERM with requests in flight: each gets its answer, and the events are in the log', async () => {
  const dataDir = tempDir()
  const { child, url } = await serve([], { EVENTPLANE_DATA_DIR: dataDir })
  const body = JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: `drain ${i}` })))
  const requests = Array.from({ length: 40 }, () =>
    fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(
      (r) => r.status,
      () => 'refused',
    ),
  )
  await new Promise((r) => setTimeout(r, 5))
  child.kill('SIGTERM')
  const statuses = await Promise.all(requests)
  const [code] = child.exitCode !== null ? [child.exitCode] : await once(child, 'exit')
  assert.equal(code, 0)
  // Requests the server had taken are answered 201; later ones get 503 (a kept-alive
  // connection) or are refused at the socket: none is cut off half-way.
  assert.ok(statuses.every((s) => s === 201 || s === 503 || s === 'refused'), JSON.stringify(statuses))
  const accepted = statuses.filter((s) => s === 201).length
  const { openSqliteLog } = await import('../../src/log/index.ts')
  const log = await openSqliteLog({ path: join(dataDir, 'events.sqlite') })
  try {
    assert.equal(await log.latest('datacenter1.test.event', 0), accepted * 50)
  } finally {
    await log.close()
  }
})

test('SIGHUP reloads the stream config; a bad edit keeps the last good config', async () => {
  const dir = tempDir()
  const streams = join(dir, 'streams.yaml')
  copyFileSync(join(repoRoot, 'defaults/streams.yaml'), streams)
  const config = join(dir, 'eventplane.yaml')
  writeFileSync(
    config,
    `schemas:\n  repositories:\n    - {name: eventplane, path: ${join(repoRoot, 'defaults/schemas')}}\nstream_config:\n  source: ${streams}\n  watch: false\n`,
  )
  const { child, url, output } = await serve(['--config', config])
  try {
    const names = async () => Object.keys((await (await fetch(`${url}/v1/stream-configs`)).json()) as object)
    assert.ok(!(await names()).includes('added.stream'))
    writeFileSync(streams, readFileSync(streams, 'utf8').replace('streams:\n', 'streams:\n  added.stream:\n    schema_title: eventplane/test/event\n'))
    child.kill('SIGHUP')
    for (let i = 0; i < 100 && !(await names()).includes('added.stream'); i++) await new Promise((r) => setTimeout(r, 50))
    assert.ok((await names()).includes('added.stream'), output())

    writeFileSync(streams, 'streams:\n  broken.stream:\n    sample: {rate: 7}\n')
    child.kill('SIGHUP')
    let metrics = ''
    for (let i = 0; i < 100; i++) {
      metrics = await (await fetch(`${url}/metrics`)).text()
      if (/eventplane_stream_config_last_reload_success\S* 0/.test(metrics)) break
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.match(metrics, /eventplane_stream_config_last_reload_success\S* 0/)
    assert.ok((await names()).includes('added.stream'), 'the last good config is still served')
    assert.match(output(), /EVP_STREAM_CONFIG_INVALID/)
  } finally {
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
})

test('SIGHUP under load: 20 reloads, good and bad edits, while 8 producers post; every request is answered 201 and every event is in the log once', async (t) => {
  const dir = tempDir()
  const dataDir = join(dir, 'data')
  const streams = join(dir, 'streams.yaml')
  const original = readFileSync(join(repoRoot, 'defaults/streams.yaml'), 'utf8')
  writeFileSync(streams, original)
  const config = join(dir, 'eventplane.yaml')
  writeFileSync(
    config,
    `data_dir: ${dataDir}\nschemas:\n  repositories:\n    - {name: eventplane, path: ${join(repoRoot, 'defaults/schemas')}}\nstream_config:\n  source: ${streams}\n  watch: false\n`,
  )
  const { child, url, output } = await serve(['--config', config], { EVENTPLANE_DATA_DIR: dataDir })
  const acknowledged = new Set<string>()
  const statuses = new Map<string, number>()
  let stop = false
  const producer = async (worker: number) => {
    for (let n = 0; !stop; n++) {
      const ids = [0, 1, 2].map((i) => `w${worker}-${n}-${i}`)
      const body = JSON.stringify(ids.map((id) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id }, test: 'reload' })))
      let status: string
      try {
        const response = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        await response.arrayBuffer()
        status = String(response.status)
        if (response.status === 201) ids.forEach((id) => acknowledged.add(id))
      } catch (error) {
        status = `failed: ${(error as Error).message}`
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
    }
  }
  const producers = Array.from({ length: 8 }, (_, i) => producer(i))
  try {
    for (let reload = 0; reload < 20; reload++) {
      await new Promise((r) => setTimeout(r, 100))
      // Even reloads add a stream; odd ones write a config that does not load (kept out).
      writeFileSync(streams, reload % 2 === 0 ? original.replace('streams:\n', `streams:\n  added.${reload}:\n    schema_title: eventplane/test/event\n`) : 'streams:\n  broken.stream:\n    sample: {rate: 7}\n')
      child.kill('SIGHUP')
    }
    await new Promise((r) => setTimeout(r, 300))
    stop = true
    await Promise.all(producers)
    const tried = [...statuses.values()].reduce((a, b) => a + b, 0)
    assert.deepEqual([...statuses.keys()], ['201'], `every request answered 201 (${tried} tried): ${JSON.stringify([...statuses])}`)
    assert.ok(acknowledged.size >= 300, `only ${acknowledged.size} events were acknowledged`)
    // The last edit did not load; the one before it (added.18) is what is served.
    const names = Object.keys((await (await fetch(`${url}/v1/stream-configs`)).json()) as object)
    assert.ok(names.includes('added.18'), names.join(', '))
    const metrics = await (await fetch(`${url}/metrics`)).text()
    const reloads = (result: string) => Number(new RegExp(`^eventplane_stream_config_reloads_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0)
    assert.ok(reloads('ok') >= 1 && reloads('error') >= 1, metrics.split('\n').filter((l) => l.includes('reloads_total')).join('\n'))
    const added = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'added.18' }, test: 'after' }) })
    assert.equal(added.status, 201)
  } finally {
    stop = true
    await Promise.all(producers)
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
  const { openSqliteLog } = await import('../../src/log/index.ts')
  const log = await openSqliteLog({ path: join(dataDir, 'events.sqlite') })
  try {
    const seen = new Map<string, number>()
    for await (const record of log.read({ topic: 'datacenter1.test.event', partition: 0, offset: 0 }, { follow: false })) {
      const id = (JSON.parse(record.value.toString()) as { meta: { id: string } }).meta.id
      seen.set(id, (seen.get(id) ?? 0) + 1)
    }
    assert.deepEqual([...acknowledged].filter((id) => !seen.has(id)), [], 'every acknowledged event is in the log')
    assert.deepEqual([...seen].filter(([, n]) => n > 1), [], 'none twice')
    const tried = [...statuses.values()].reduce((a, b) => a + b, 0)
    t.diagnostic(`${tried} requests tried, all answered 201; ${acknowledged.size} events acknowledged, 0 lost, 0 twice; 20 SIGHUPs (10 edits loaded, 10 refused)`)
  } finally {
    await log.close()
  }
  assert.match(output(), /EVP_STREAM_CONFIG_INVALID/)
})

test('a bad config stops serve before it listens, naming the file and line', async () => {
  const config = join(tempDir(), 'eventplane.yaml')
  writeFileSync(config, 'server:\n  port: -1\n')
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/bin.ts'), 'serve', '--config', config], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const [code] = await once(child, 'exit')
  assert.equal(code, 1)
  assert.match(stderr, new RegExp(`${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: server.port must be >= 0 \\[EVP_CONFIG_INVALID\\]`))
})

test('the start-up line names the event log; a taken port is EVP_LISTEN_FAILED with what to change, not a stack', async () => {
  const dataDir = tempDir()
  const first = await serve([], { EVENTPLANE_DATA_DIR: dataDir })
  try {
    assert.match(first.output(), new RegExp(`listening on http://127\\.0\\.0\\.1:\\d+ \\(roles: all; config: .*; event log: SQLite file ${join(dataDir, 'events.sqlite').replace(/[.]/g, '\\.')}\\)`))
    const port = new URL(first.url).port
    const second = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/bin.ts'), 'serve', '--port', port], {
      cwd: repoRoot,
      env: { ...process.env, EVENTPLANE_DATA_DIR: tempDir() },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    second.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const [code] = await once(second, 'exit')
    assert.equal(code, 1)
    assert.match(stderr, new RegExp(`cannot listen: 127\\.0\\.0\\.1:${port} is in use: another eventplane serve, or another program, listens there\\. Stop it, or choose another port \\(server\\.port, --port or PORT\\) \\[EVP_LISTEN_FAILED\\]`))
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
  } finally {
    first.child.kill('SIGTERM')
    await once(first.child, 'exit')
  }
})
