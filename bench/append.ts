/**
 * append: what a durable append costs per event, in one process, on the compiled code: the
 * event log's `appendEach` against its parts and against a raw file write of the same bytes.
 * Each round times, in turn: `write(2)` of the encoded batches to a file (what bench/intake's
 * bare-durable server pays), encoding the batches (`encodeBatch`), a bare better-sqlite3
 * transaction inserting the encoded batches into a file with the log's own schema, and
 * `appendEach` of the same records through a SQLite event log (ten appends in flight, as ten
 * requests share a group commit). The medians of the rounds are printed per event.
 */
import Database from 'better-sqlite3'
import { randomUUID } from 'node:crypto'
import { closeSync, openSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type * as SqliteLog from '../src/log/sqlite.ts'
import type * as SqliteSchema from '../src/log/sqlite-schema.ts'
import type * as Batch from '../src/log/batch.ts'
import { fixed, inTempDir, machineNotes, median, parseFlags, positiveInt, repoRoot, table } from './lib.ts'

export const usage = `npm run bench -- append [--rounds N] [--group N]

What the durable append costs per event, in process, on dist/: the SQLite event log's
appendEach against encoding the batch, a bare SQLite transaction inserting it (the log's
schema) and a raw write(2) of the same bytes. Events like the intake's (about 450 bytes
encoded), 100 per append.

  --rounds N  rounds of the four, alternated (default 9); medians are printed
  --group N   appends per group commit (default 10, as ten requests in flight)`

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { rounds: { type: 'string' }, group: { type: 'string' } } as const)
  const rounds = positiveInt(values.rounds, 'rounds', 9)
  const group = positiveInt(values.group, 'group', 10)
  return () => inTempDir('append', (dir) => run(dir, rounds, group))
}

async function run(dir: string, rounds: number, group: number): Promise<number> {
  // The compiled log, as the server runs it.
  const { openSqliteLog } = (await import(join(repoRoot, 'dist/log/sqlite.js'))) as typeof SqliteLog
  const { prepareDatabase } = (await import(join(repoRoot, 'dist/log/sqlite-schema.js'))) as typeof SqliteSchema
  const { encodeBatch, encodedSize } = (await import(join(repoRoot, 'dist/log/batch.js'))) as typeof Batch
  console.log(machineNotes('one process, unpinned'))
  const log = await openSqliteLog({ path: join(dir, 'log.sqlite'), sync: 'normal' })
  const barePath = join(dir, 'bare.sqlite')
  const db = new Database(barePath)
  prepareDatabase(db, barePath, 'normal', Date.now())
  db.exec("INSERT INTO topics (name, partitions, created_ms) VALUES ('t', 1, 0); INSERT INTO partitions (topic, partition) VALUES ('t', 0)")
  const insert = db.prepare('INSERT INTO batches (part_id, base_offset, count, min_ts, max_ts, ts_high, bytes, bytes_end, payload, appended_high) VALUES (1, ?, ?, 1, 1, 1, ?, 1, ?, 1)')
  let offset = 0
  const transaction = db.transaction((payloads: Buffer[]) => {
    for (const payload of payloads) {
      insert.run(offset, 100, payload.length, payload)
      offset += 100
    }
  })
  const now = Date.now()
  const values = Array.from({ length: 100 }, (_, i) =>
    JSON.stringify({
      $schema: '/eventplane/test/event/1.0.0',
      meta: { stream: 'test.event', domain: 'en.wikipedia.org', id: randomUUID(), dt: new Date(now).toISOString(), request_id: randomUUID() },
      dt: new Date(now - i).toISOString(),
      test: `event ${i}: some words of a test event`,
      test_map: { wiki: 'enwiki', page_id: String(1000 + i * 7919) },
      http: { client_ip: '127.0.0.1', request_headers: { 'user-agent': 'autocannon/7.15.0' } },
    }),
  )
  const affinities = values.map(() => randomUUID())
  const pending = values.map((value) => ({ timestamp: now, key: null, value, valueBytes: Buffer.byteLength(value) }))
  const size = pending.reduce((sum, record) => sum + encodedSize(record), 0)
  const payload = encodeBatch(pending, 0, pending.length, size)
  console.log(`settings: ${values.length} events per append (${payload.length} bytes encoded, ${Math.round(payload.length / values.length)} per event), ${group} appends per group commit, ${rounds} rounds`)
  const fd = openSync(join(dir, 'raw.bin'), 'a')
  const parts: Array<[string, () => unknown]> = [
    ['write(2) of the encoded batches to a file (bare-durable)', () => {
      for (let i = 0; i < group; i++) writeSync(fd, payload)
    }],
    ['encodeBatch (the records into the batch format)', () => {
      for (let i = 0; i < group; i++) encodeBatch(pending, 0, pending.length, size)
    }],
    ['bare SQLite: one transaction inserting the batches (the log\'s schema)', () => transaction.immediate(Array.from({ length: group }, () => payload))],
    ['the event log: appendEach, one group commit', () =>
      Promise.all(Array.from({ length: group }, () => log.appendEach(values.map((value, i) => ({ topic: 't', key: null, value, timestamp: now, affinity: affinities[i]! })))))],
  ]
  const times = parts.map(() => [] as number[])
  const repeats = 150
  for (let round = 0; round < rounds; round++) {
    for (let p = 0; p < parts.length; p++) {
      const work = parts[p]![1]
      for (let i = 0; i < 20; i++) await work()
      const started = process.hrtime.bigint()
      for (let i = 0; i < repeats; i++) await work()
      times[p]!.push(Number(process.hrtime.bigint() - started) / repeats / (group * values.length) / 1000)
    }
  }
  closeSync(fd)
  db.close()
  await log.close()
  console.log()
  console.log(
    table(
      ['part', 'µs/event (median)', 'range of the rounds'],
      parts.map(([name], p) => [name, fixed(median(times[p]!), 3), `${fixed(Math.min(...times[p]!), 3)}–${fixed(Math.max(...times[p]!), 3)}`]),
      [false, true, true],
    ),
  )
  return 0
}
