/**
 * The server producer against a real intake (`eventplane serve` as its own process, on the
 * embedded log): exact per-event results, 100,000 events with 5 % invalid and the intake
 * restarted in the middle, then every accepted event read back from the log once.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Producer } from '../../packages/client/src/producer.ts'
import { openSqliteLog } from '../../src/log/index.ts'
import { spawnServer, tempDir, writeBundledConfig } from '../helpers.ts'

const children: Array<{ kill(signal?: NodeJS.Signals): boolean }> = []
after(() => {
  for (const child of children) child.kill('SIGKILL')
})

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

function setup() {
  const dir = tempDir()
  const config = writeBundledConfig(dir, { event_log: { sync: 'normal' }, log: { level: 'warn' } })
  return { dir, config }
}

async function start(config: string, port: number) {
  const server = await spawnServer(['--config', config, '--port', String(port), '--host', '127.0.0.1'])
  children.push(server.child)
  return server
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  await exited
}

async function readBack(dir: string): Promise<Map<string, number>> {
  const log = await openSqliteLog({ path: join(dir, 'data', 'events.sqlite') })
  const ids = new Map<string, number>()
  try {
    const topic = 'datacenter1.test.event'
    if (!(await log.topics()).includes(topic)) return ids
    for (let partition = 0; partition < (await log.partitions(topic)); partition++) {
      for await (const record of log.read({ topic, partition, offset: 0 }, { follow: false })) {
        const id = (JSON.parse(record.value.toString('utf8')) as { meta: { id: string } }).meta.id
        ids.set(id, (ids.get(id) ?? 0) + 1)
      }
    }
  } finally {
    await log.close()
  }
  return ids
}

const event = (i: number, invalid = false) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: invalid ? i : `producer ${i}` })

test('producer: per-event results of one send, meta.id given and kept, bad options refused', async () => {
  const { dir, config } = setup()
  const server = await start(config, await freePort())
  try {
    const producer = new Producer({ url: server.url })
    const own = { ...event(1), meta: { stream: 'test.event', id: '11111111-2222-4333-8444-555555555555' } }
    const result = await producer.send([event(0), own, event(2, true), event(3)])
    assert.equal(result.accepted.length, 3)
    assert.equal(result.invalid.length, 1)
    assert.equal(result.invalid[0]!.code, 'EVP_EVENT_INVALID')
    assert.equal(result.invalid[0]!.event['test'], 2)
    assert.equal(result.failed.length, 0)
    assert.ok(result.accepted.every((e) => typeof (e['meta'] as { id?: unknown }).id === 'string'), 'every event got a meta.id')
    assert.ok(result.accepted.includes(own) && own.meta.id === '11111111-2222-4333-8444-555555555555', 'a given meta.id is kept')
    await producer.close()
    const closed = await producer.send(event(4))
    assert.equal(closed.failed[0]?.code, 'closed')
    assert.throws(() => new Producer({ url: 'localhost:8192' }), /http\(s\) URL/)
    assert.throws(() => new Producer({ url: server.url, maxInFlight: 0 }), /maxInFlight must be a positive integer/)
  } finally {
    await stop(server.child)
  }
  const ids = await readBack(dir)
  assert.equal(ids.size, 3)
})

test('producer: 100,000 events, 5 % invalid, the intake restarted in the middle: counts exact, nothing lost, nothing twice', { timeout: 240_000 }, async () => {
  const { dir, config } = setup()
  const port = await freePort()
  let server = await start(config, port)
  const producer = new Producer({ url: server.url, maxBatchEvents: 500, retryBaseMs: 100, retryMaxMs: 1000, maxAttempts: 100, timeoutMs: 10_000 })
  const total = 100_000
  const sends: Array<Promise<Awaited<ReturnType<Producer['send']>>>> = []
  let restarted = false
  const restart = (async () => {
    while (producer.stats.accepted < 30_000) await new Promise((resolve) => setTimeout(resolve, 20))
    await stop(server.child)
    server = await start(config, port)
    restarted = true
  })()
  for (let i = 0; i < total; i += 1000) {
    const chunk = Array.from({ length: 1000 }, (_, j) => event(i + j, (i + j) % 20 === 7))
    sends.push(producer.send(chunk))
    await new Promise((resolve) => setImmediate(resolve))
  }
  const results = await Promise.all(sends)
  await restart
  await producer.close()
  await stop(server.child)
  assert.ok(restarted, 'the intake was restarted during the run')
  const accepted = results.reduce((n, r) => n + r.accepted.length, 0)
  const invalid = results.reduce((n, r) => n + r.invalid.length, 0)
  const failed = results.reduce((n, r) => n + r.failed.length, 0)
  assert.deepEqual({ accepted, invalid, failed }, { accepted: 95_000, invalid: 5_000, failed: 0 }, JSON.stringify(producer.stats))
  assert.ok(results.every((r) => r.invalid.every((x) => typeof x.event['test'] === 'number')), 'only the invalid events were refused')
  const ids = await readBack(dir)
  const acceptedIds = results.flatMap((r) => r.accepted.map((e) => (e['meta'] as { id: string }).id))
  const missing = acceptedIds.filter((id) => !ids.has(id))
  const twice = [...ids].filter(([, n]) => n > 1)
  assert.equal(missing.length, 0, `accepted but not in the log: ${missing.slice(0, 3).join(', ')}`)
  assert.equal(twice.length, 0, `in the log more than once: ${twice.slice(0, 3).map(([id, n]) => `${id} ×${n}`).join(', ')}`)
  assert.equal(ids.size, 95_000, 'nothing else in the log')
  console.log(`producer: ${JSON.stringify(producer.stats)}`)
})
