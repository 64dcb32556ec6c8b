/**
 * `eventplane log backup`: a consistent copy of the embedded log while the server appends, and
 * a restore from it (docs/operations.md, "Backups").
 */
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/index.ts'
import { openSqliteLog } from '../../src/log/index.ts'
import { startServer } from '../../src/server/index.ts'
import { cli, tempDir, writeBundledConfig } from '../helpers.ts'

const topic = 'datacenter1.test.event'

async function readAll(path: string): Promise<string[]> {
  const log = await openSqliteLog({ path })
  try {
    const values: string[] = []
    if (!(await log.topics()).includes(topic)) return values
    for await (const record of log.read({ topic, partition: 0, offset: 0 }, { follow: false })) values.push(record.value.toString('utf8'))
    return values
  } finally {
    await log.close()
  }
}

test('log backup copies a consistent snapshot while events are appended, and the server starts again from the copy', async () => {
  const dir = tempDir()
  const config = writeBundledConfig(dir, { server: { port: 0 } })
  const logPath = join(dir, 'data', 'events.sqlite')
  const start = () => startServer(loadConfig({ path: config, env: {} }).config, { logger: pino({ level: 'silent' }) })
  let server = await start()
  let acknowledged = 0
  let posting = true
  const post = async (i: number) => {
    const events = Array.from({ length: 10 }, (_, j) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: `backup ${i}.${j}` }))
    const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
    assert.equal(response.status, 201)
    acknowledged += 10
  }
  // Producers keep appending during the backup.
  const producers = (async () => {
    for (let i = 0; posting; i++) await post(i)
  })()
  try {
    while (acknowledged < 200) await new Promise((resolve) => setTimeout(resolve, 5))
    // A reader holding an old snapshot keeps the checkpointer from moving newer commits into the
    // main file: those are then only in the WAL, where a plain copy of the file would miss them.
    const pin = new Database(logPath, { readonly: true })
    pin.exec('BEGIN')
    pin.prepare('SELECT count(*) FROM batches').get()
    const pinnedAt = acknowledged
    while (acknowledged < pinnedAt + 100) await new Promise((resolve) => setTimeout(resolve, 5))
    const before = acknowledged
    const dest = join(dir, 'backup', 'events-copy.sqlite')
    // The folder must exist: a backup makes no folders.
    const missingFolder = await cli(['log', 'backup', dest, '--config', config])
    assert.equal(missingFolder.code, 1)
    assert.match(missingFolder.stderr, /the backup of .* failed: .*\[EVP_LOG_UNAVAILABLE\]/)
    mkdirSync(join(dir, 'backup'))
    const result = await cli(['log', 'backup', dest, '--config', config])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /backed up .*events\.sqlite to .*events-copy\.sqlite: \d+ topics?, \d+ records, [\d.]+ MiB, in [\d.]+ s \(integrity check: ok\)/)
    const during = acknowledged
    posting = false
    await producers
    pin.exec('COMMIT')
    pin.close()

    // Everything acknowledged before the backup began is in it; nothing after the end of it.
    const copied = await readAll(dest)
    assert.ok(copied.length >= before, `${copied.length} records in the backup, ${before} acknowledged before it`)
    assert.ok(copied.length <= during + 10, `${copied.length} records in the backup, ${during} acknowledged by its end`)
    const live = await readAll(logPath)
    assert.deepEqual(copied, live.slice(0, copied.length), 'the backup is a prefix of the live log, record for record')
    assert.match(result.stdout, new RegExp(`, ${copied.length} records,`))

    // A backup never overwrites.
    const again = await cli(['log', 'backup', dest, '--config', config])
    assert.equal(again.code, 2)
    assert.match(again.stderr, /exists: a backup never overwrites a file/)

    // Restore: stop, put the copy in place of the file (and drop its WAL), start.
    await server.close()
    renameSync(logPath, `${logPath}.broken`)
    for (const suffix of ['-wal', '-shm']) rmSync(`${logPath}${suffix}`, { force: true })
    copyFileSync(dest, logPath)
    server = await start()
    assert.equal(await server.platform.log!.latest(topic, 0), copied.length)
    await post(-1)
    assert.equal(await server.platform.log!.latest(topic, 0), copied.length + 10, 'appends go on after the restored records')
  } finally {
    posting = false
    await producers.catch(() => undefined)
    await server.close()
  }
})

test('log backup explains what it cannot do: no log yet, a Kafka log, no destination', async () => {
  const dir = tempDir()
  const config = writeBundledConfig(dir)
  const none = await cli(['log', 'backup', join(dir, 'copy.sqlite'), '--config', config])
  assert.equal(none.code, 1)
  assert.match(none.stderr, /no event log at .*events\.sqlite \(has the server run with this config\?\) \[EVP_LOG_UNAVAILABLE\]/)
  assert.equal(existsSync(join(dir, 'copy.sqlite')), false)
  const kafka = await cli(['log', 'backup', join(dir, 'copy.sqlite'), '--config', config], { env: { EVENTPLANE_EVENT_LOG: 'kafka', EVENTPLANE_KAFKA_BROKERS: '127.0.0.1:9' } })
  assert.equal(kafka.code, 2)
  assert.match(kafka.stderr, /back it up on the Kafka side/)
  const usage = await cli(['log', 'backup', '--config', config])
  assert.equal(usage.code, 2)
  assert.match(usage.stderr, /name the file to write/)
})
