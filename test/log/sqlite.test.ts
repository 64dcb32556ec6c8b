import assert from 'node:assert/strict'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import {
  appendChannelName,
  openSqliteLog,
  type AppendMessage,
  type SqliteLogOptions,
  sqliteSchemaVersion,
} from '../../src/log/index.ts'
import { Capture, repoRoot, tempDir } from '../helpers.ts'
import { contractPartitions, eventLogContract, readAll, rejectsWith, take, within } from './contract.ts'

const root = tempDir('eventplane-log-')
let files = 0
/** A path for a new log file. */
function newPath(): string {
  return join(root, `log-${++files}.sqlite`)
}

eventLogContract('sqlite', async () => {
  const path = newPath()
  const options: SqliteLogOptions = { path, defaultPartitions: contractPartitions, pollIntervalMs: 25 }
  return {
    log: await openSqliteLog(options),
    reopen: () => openSqliteLog(options),
    cleanup: async () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true })
    },
  }
})

/** Opens a log on a new file; `close()` of the result also closes the test's own connections. */
async function fresh(options: Partial<SqliteLogOptions> = {}) {
  const path = options.path ?? newPath()
  const log = await openSqliteLog({ pollIntervalMs: 25, ...options, path })
  /** A second, plain connection to the same file, to look inside or to interfere. */
  const peek = new Database(path)
  return {
    log,
    path,
    peek,
    async close() {
      await log.close()
      peek.close()
    },
  }
}

function rows(db: Database.Database, sql: string, ...params: unknown[]): Array<Record<string, number>> {
  return db.prepare(sql).all(...params) as Array<Record<string, number>>
}

/** A clock for the `clock` option that moves only when set. */
function testClock(start: number) {
  let time = start
  return {
    now: () => time,
    set(to: number) {
      time = to
    },
  }
}

/** The columns of `batches` up to version 2. */
const batchColumnsV2 = ['id', 'part_id', 'base_offset', 'count', 'min_ts', 'max_ts', 'ts_high', 'bytes', 'bytes_end', 'payload']

/** Turns a closed log file of the current layout into the layout an older version wrote. */
function downgrade(path: string, version: 1 | 2): void {
  const raw = new Database(path)
  raw.exec('ALTER TABLE batches DROP COLUMN appended_high')
  if (version === 1) raw.exec('CREATE INDEX batches_by_time ON batches (part_id, ts_high, base_offset)')
  raw.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(version))
  const columns = raw.prepare("SELECT name FROM pragma_table_info('batches')").pluck().all()
  raw.close()
  assert.deepEqual(columns, batchColumnsV2)
}

const minute = 60_000
const hour = 60 * minute
const day = 24 * hour
/** A fixed "now" for tests that set the clock. */
const t0 = Date.UTC(2025, 5, 1)
const dated1971 = Date.UTC(1971, 0, 1)
const dated9999 = Date.UTC(9999, 11, 31)

describe('sqlite log: storage', () => {
  test('a new file is in WAL mode, marked as an event log, with a schema version', async () => {
    const { peek, close } = await fresh()
    try {
      assert.equal(peek.pragma('journal_mode', { simple: true }), 'wal')
      assert.equal(peek.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), String(sqliteSchemaVersion))
      assert.notEqual(peek.pragma('application_id', { simple: true }), 0)
    } finally {
      await close()
    }
  })

  test('the records of one append for one partition are one batch row', async () => {
    const { log, peek, close } = await fresh({ defaultPartitions: 3 })
    try {
      await log.append(Array.from({ length: 100 }, (_, i) => ({ topic: 'one', partition: 1, value: `event ${i}` })))
      assert.deepEqual(rows(peek, 'SELECT base_offset, count FROM batches'), [{ base_offset: 0, count: 100 }])
      await log.append(Array.from({ length: 100 }, (_, i) => ({ topic: 'spread', key: `k${i}`, value: `event ${i}` })))
      const spread = rows(peek, "SELECT count FROM batches JOIN partitions p ON p.id = part_id WHERE p.topic = 'spread'")
      assert.equal(spread.length, 3, 'one row per partition')
      assert.equal(spread.reduce((sum, row) => sum + row.count!, 0), 100)
    } finally {
      await close()
    }
  })

  test('an append larger than a batch row is split into rows, and reads back whole', async () => {
    const { log, peek, close } = await fresh()
    try {
      const values = Array.from({ length: 10 }, (_, i) => Buffer.alloc(300_000, i))
      await log.append(values.map((value) => ({ topic: 'big', value })))
      const batches = rows(peek, 'SELECT base_offset, count FROM batches ORDER BY base_offset')
      assert.ok(batches.length >= 3, `${batches.length} rows`)
      assert.equal(batches.reduce((sum, row) => sum + row.count!, 0), 10)
      const records = await readAll(log, { topic: 'big', partition: 0, offset: 0 })
      assert.ok(records.every((record, i) => record.value.equals(values[i]!)))
      const middle = await readAll(log, { topic: 'big', partition: 0, offset: 4 }, { batchSize: 1 })
      assert.deepEqual(
        middle.map((r) => r.offset),
        [4, 5, 6, 7, 8, 9],
      )
    } finally {
      await close()
    }
  })

  test('a file that is not an event log, or from a newer version, is refused', async () => {
    const other = newPath()
    const db = new Database(other)
    db.exec('CREATE TABLE notes (text TEXT)')
    db.close()
    await rejectsWith(() => openSqliteLog({ path: other }), 'EVP_LOG_UNAVAILABLE', 'a foreign SQLite file')

    const { peek, close, path } = await fresh()
    await close()
    const newer = new Database(path)
    newer.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run()
    newer.close()
    void peek
    await rejectsWith(() => openSqliteLog({ path }), 'EVP_LOG_UNAVAILABLE', 'a log with schema version 99')
  })

  test('bad options fail with EVP_LOG_INVALID_ARGUMENT', async () => {
    const code = 'EVP_LOG_INVALID_ARGUMENT'
    await rejectsWith(() => openSqliteLog({ path: ':memory:' }), code, 'path :memory:')
    await rejectsWith(() => openSqliteLog({ path: newPath(), defaultPartitions: 0 }), code, 'defaultPartitions 0')
    await rejectsWith(() => openSqliteLog({ path: newPath(), topicPartitions: { 'a b': 2 } }), code, 'a bad topic name')
    await rejectsWith(() => openSqliteLog({ path: newPath(), retention: { maxAgeMs: -1 } }), code, 'maxAgeMs -1')
  })

  test('topicPartitions applies when a topic is created; an existing topic keeps its count', async () => {
    const path = newPath()
    const first = await openSqliteLog({ path, defaultPartitions: 2, topicPartitions: { wide: 5 } })
    assert.equal(await first.partitions('wide'), 5)
    assert.equal(await first.partitions('narrow'), 2)
    await first.close()
    const second = await openSqliteLog({ path, defaultPartitions: 4, topicPartitions: { wide: 1 } })
    assert.equal(await second.partitions('wide'), 5)
    assert.equal(await second.partitions('narrow'), 2)
    assert.equal(await second.partitions('new'), 4)
    await second.close()
  })
})

describe('sqlite log: group commit', () => {
  test('1000 concurrent appends are one transaction, in call order', async () => {
    const { log, peek, close } = await fresh()
    try {
      await log.partitions('group')
      const before = log.stats()
      const results = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => log.append([{ topic: 'group', value: `v${i}` }])),
      )
      const after = log.stats()
      assert.equal(after.groupCommits - before.groupCommits, 1)
      assert.equal(after.appends - before.appends, 1000)
      assert.deepEqual(
        results.map(([position]) => position!.offset),
        [...Array(1000).keys()],
      )
      assert.equal(rows(peek, 'SELECT count(*) AS n FROM batches')[0]!.n, 1)
    } finally {
      await close()
    }
  })

  test('a failing transaction rejects every append of its group and leaves nothing', async () => {
    const { log, peek, close } = await fresh()
    try {
      await log.append([{ topic: 'good', value: 'before' }])
      await log.partitions('poison')
      peek.exec(`CREATE TRIGGER poison BEFORE INSERT ON batches
        WHEN NEW.part_id IN (SELECT id FROM partitions WHERE topic = 'poison')
        BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END`)
      // The good appends come first in the group, so their rows are written before the failure.
      const results = await Promise.allSettled([
        log.append([{ topic: 'good', value: 'g1' }, { topic: 'good', value: 'g2' }]),
        log.append([{ topic: 'poison', value: 'p' }]),
        log.append([{ topic: 'good', value: 'g3' }]),
      ])
      for (const result of results) {
        assert.equal(result.status, 'rejected')
        const error = (result as PromiseRejectedResult).reason as { code: string; canRetry: boolean }
        assert.equal(error.code, 'EVP_LOG_UNAVAILABLE')
        assert.equal(error.canRetry, true)
      }
      assert.equal(log.stats().failedGroupCommits, 1)
      assert.equal(await log.latest('good', 0), 1)
      assert.equal(await log.latest('poison', 0), 0)
      assert.equal(rows(peek, 'SELECT count(*) AS n FROM batches')[0]!.n, 1)

      peek.exec('DROP TRIGGER poison')
      const [position] = await log.append([{ topic: 'good', value: 'after' }])
      assert.equal(position!.offset, 1, 'the failed group used up no offsets')
      assert.deepEqual(
        (await readAll(log, { topic: 'good', partition: 0, offset: 0 })).map((r) => r.value.toString()),
        ['before', 'after'],
      )
    } finally {
      await close()
    }
  })

  test('a write lock held too long by another connection fails the group with EVP_LOG_UNAVAILABLE', async () => {
    const { log, peek, close } = await fresh({ busyTimeoutMs: 50 })
    try {
      await log.partitions('busy')
      peek.exec('BEGIN IMMEDIATE')
      await rejectsWith(() => log.append([{ topic: 'busy', value: 'blocked' }]), 'EVP_LOG_UNAVAILABLE', 'append while locked')
      peek.exec('ROLLBACK')
      const [position] = await log.append([{ topic: 'busy', value: 'free' }])
      assert.equal(position!.offset, 0)
    } finally {
      await close()
    }
  })

  test('two logs on one file (two writers) never hand out the same offset', async () => {
    const { log: a, path, close } = await fresh()
    const b = await openSqliteLog({ path, pollIntervalMs: 25 })
    try {
      for (let i = 0; i < 10; i++) {
        const [position] = await (i % 2 === 0 ? a : b).append([{ topic: 'shared', value: `${i}` }])
        assert.equal(position!.offset, i)
      }
      const both = await Promise.all(
        Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).append([{ topic: 'shared', value: `c${i}` }])),
      )
      const offsets = both.map(([p]) => p!.offset).sort((x, y) => x - y)
      assert.deepEqual(offsets, Array.from({ length: 100 }, (_, i) => i + 10))
      assert.equal(await a.latest('shared', 0), 110)
      assert.equal(await b.latest('shared', 0), 110)

      // A reader on one log sees the other's appends through polling.
      const seen = take(a, { topic: 'shared', partition: 0, offset: 110 }, 1, 'an append made through the other log')
      await new Promise((resolve) => setTimeout(resolve, 30))
      await b.append([{ topic: 'shared', value: 'from b' }])
      assert.equal((await seen)[0]!.value.toString(), 'from b')
    } finally {
      await b.close()
      await close()
    }
  })

  test('metrics count appends and group commits, and go away on close', async () => {
    const registry = new Registry()
    const { log, close } = await fresh({ registry })
    await log.append([{ topic: 'metered', value: 'a' }, { topic: 'metered', value: 'b' }])
    await Promise.all([log.append([{ topic: 'metered', value: 'c' }]), log.append([{ topic: 'other', value: 'd' }])])
    const text = await registry.metrics()
    assert.match(text, /eventplane_log_appended_records_total\{topic="metered"\} 3/)
    assert.match(text, /eventplane_log_appended_records_total\{topic="other"\} 1/)
    assert.match(text, /eventplane_log_group_commit_size_count 2/)
    assert.match(text, /eventplane_log_group_commit_size_sum 3/)
    assert.match(text, /eventplane_log_append_duration_seconds_count 2/)
    await close()
    assert.equal(registry.getSingleMetric('eventplane_log_appended_records_total'), undefined)
  })

  test(`each group commit is published on diagnostics channel ${appendChannelName}`, async () => {
    const messages: AppendMessage[] = []
    const listener = (message: unknown) => messages.push(message as AppendMessage)
    subscribe(appendChannelName, listener)
    const { log, close } = await fresh()
    try {
      await Promise.all([log.append([{ topic: 'traced', value: 'a' }]), log.append([{ topic: 'traced', value: 'b' }])])
      const mine = messages.filter((m) => m.path === log.path)
      assert.equal(mine.length, 1)
      assert.equal(mine[0]!.appends, 2)
      assert.equal(mine[0]!.records, 2)
      assert.equal(mine[0]!.error, undefined)
    } finally {
      unsubscribe(appendChannelName, listener)
      await close()
    }
  })
})

describe('sqlite log: retention', () => {
  test('by age: whole batches from the start appended longer ago go; offsets stay', async () => {
    const now = Date.now()
    const clock = testClock(now)
    const { log, close } = await fresh({ retention: { maxAgeMs: hour }, clock: clock.now })
    try {
      const batch = (n: number, age: number) => {
        clock.set(now - age * hour)
        return log.append(Array.from({ length: n }, () => ({ topic: 'aged', value: `${age}h` })))
      }
      await batch(3, 5)
      await batch(2, 4)
      await batch(2, 0)
      await batch(1, 6) // the clock stepped back, after a recent batch: the log start only moves forward over a prefix
      clock.set(now)
      const result = await log.enforceRetention()
      assert.equal(result.deletedBatches, 2)
      assert.equal(result.deletedRecords, 5)
      assert.equal(await log.earliest('aged', 0), 5)
      assert.equal(await log.latest('aged', 0), 8)
      const records = await readAll(log, { topic: 'aged', partition: 0, offset: 0 })
      assert.deepEqual(
        records.map((r) => r.offset),
        [5, 6, 7],
        'a read below the earliest offset starts at the earliest',
      )
      assert.equal((await log.offsetsForTimes('aged', 0))[0]!.offset, 5)
      const [next] = await log.append([{ topic: 'aged', value: 'new' }])
      assert.equal(next!.offset, 8)
      assert.equal((await log.enforceRetention(now)).deletedBatches, 0)
    } finally {
      await close()
    }
  })

  test('by size: the oldest batches go until the partition holds at most maxBytes', async () => {
    const { log, peek, close } = await fresh({ retention: { maxBytes: 3000 } })
    try {
      for (let i = 0; i < 10; i++) await log.append([{ topic: 'sized', value: 'x'.repeat(1000) }])
      const result = await log.enforceRetention()
      assert.equal(result.deletedBatches, 8)
      assert.ok(rows(peek, 'SELECT sum(bytes) AS n FROM batches')[0]!.n! <= 3000)
      assert.equal(await log.earliest('sized', 0), 8)
      assert.equal(await log.latest('sized', 0), 10)
    } finally {
      await close()
    }
  })

  test('when retention empties a partition, its offsets are still not reused, also after reopening', async () => {
    const path = newPath()
    const first = await openSqliteLog({ path, retention: { maxBytes: 0 } })
    await first.append([1, 2, 3].map((i) => ({ topic: 'emptied', value: `${i}` })))
    assert.equal((await first.enforceRetention()).deletedRecords, 3)
    assert.equal(await first.earliest('emptied', 0), 3)
    assert.equal(await first.latest('emptied', 0), 3)
    await first.close()
    const second = await openSqliteLog({ path })
    assert.equal(await second.earliest('emptied', 0), 3)
    assert.equal(await second.latest('emptied', 0), 3)
    const [position] = await second.append([{ topic: 'emptied', value: '4' }])
    assert.equal(position!.offset, 3)
    assert.deepEqual(
      (await readAll(second, { topic: 'emptied', partition: 0, offset: 0 })).map((r) => r.offset),
      [3],
    )
    await second.close()
  })

  test('a time search skips to a kept batch when the batch that set the running maximum is gone', async () => {
    // Batches of 115 payload bytes with timestamps 5000, 1000, 6000; dropping only the first
    // leaves the second with ts_high 5000 although its own record is at 1000.
    const { log, close } = await fresh({ retention: { maxBytes: 230 } })
    try {
      for (const timestamp of [5000, 1000, 6000]) await log.append([{ topic: 'ts', value: 'x'.repeat(100), timestamp }])
      assert.equal((await log.enforceRetention()).deletedBatches, 1)
      assert.equal((await log.offsetsForTimes('ts', 3000))[0]!.offset, 2)
      assert.equal((await log.offsetsForTimes('ts', 500))[0]!.offset, 1)
      assert.equal((await log.offsetsForTimes('ts', 7000))[0]!.offset, 3)
    } finally {
      await close()
    }
  })

  test('runs on its own every checkIntervalMs', async () => {
    const now = Date.now()
    const clock = testClock(now)
    const { log, close } = await fresh({ retention: { maxAgeMs: 1000, checkIntervalMs: 20 }, clock: clock.now })
    try {
      await log.append([{ topic: 'auto', value: 'ancient' }])
      clock.set(now + 2000)
      await log.append([{ topic: 'auto', value: 'recent' }])
      await within(
        (async () => {
          while ((await log.earliest('auto', 0)) === 0) await new Promise((resolve) => setTimeout(resolve, 10))
        })(),
        'retention to run on its timer',
      )
      assert.equal(await log.earliest('auto', 0), 1)
    } finally {
      await close()
    }
  })

  test('by size, with an age as well: recently appended batches still go until the partition holds at most maxBytes', async () => {
    const clock = testClock(t0)
    const { log, peek, close } = await fresh({ retention: { maxBytes: 3000, maxAgeMs: 7 * day }, clock: clock.now })
    try {
      for (let i = 0; i < 10; i++) await log.append([{ topic: 'sized', value: 'x'.repeat(1000), timestamp: dated9999 }])
      const result = await log.enforceRetention()
      assert.equal(result.deletedBatches, 8)
      assert.equal(result.deletedBytes, 8 * 1015)
      assert.ok(rows(peek, 'SELECT sum(bytes) AS n FROM batches')[0]!.n! <= 3000)
      assert.equal(await log.earliest('sized', 0), 8)
      assert.equal(await log.latest('sized', 0), 10)
    } finally {
      await close()
    }
  })
})

describe("sqlite log: retention by append time, not by the producer's timestamp", () => {
  test('an event dated 1971 is kept maxAgeMs after it was appended, not deleted at the next pass', async () => {
    const clock = testClock(t0)
    const { log, close } = await fresh({ retention: { maxAgeMs: 7 * day }, clock: clock.now })
    try {
      await log.append([{ topic: 'backdated', value: 'dated 1971', timestamp: dated1971 }])
      assert.equal((await log.enforceRetention(t0 + minute)).deletedRecords, 0)
      const [kept] = await readAll(log, { topic: 'backdated', partition: 0, offset: 0 })
      assert.equal(kept!.timestamp, dated1971, "the record timestamp is still the producer's")
      assert.equal((await log.offsetsForTimes('backdated', dated1971))[0]!.offset, 0)
      assert.equal((await log.enforceRetention(t0 + 7 * day)).deletedRecords, 0)
      assert.equal((await log.enforceRetention(t0 + 7 * day + 1)).deletedRecords, 1)
      assert.equal(await log.earliest('backdated', 0), 1)
    } finally {
      await close()
    }
  })

  test('an event dated 1971 is kept past the next pass with the default clock too', async () => {
    const { log, close } = await fresh({ retention: { maxAgeMs: 7 * day } })
    try {
      await log.append([{ topic: 'backdated', value: 'dated 1971', timestamp: dated1971 }])
      assert.equal((await log.enforceRetention(Date.now() + minute)).deletedRecords, 0)
      assert.equal((await log.enforceRetention(Date.now() + 7 * day + minute)).deletedRecords, 1)
    } finally {
      await close()
    }
  })

  test('an event dated 9999 does not stop age retention of its partition', async () => {
    const clock = testClock(t0)
    const { log, close } = await fresh({ retention: { maxAgeMs: 7 * day }, clock: clock.now })
    try {
      await log.append([{ topic: 'future', value: 'dated 9999', timestamp: dated9999 }])
      for (let i = 0; i < 3; i++) await log.append([{ topic: 'future', value: `ordinary ${i}` }])
      clock.set(t0 + hour)
      await log.append([{ topic: 'future', value: 'an hour later' }])
      // Reads by time still go by the records' timestamps.
      assert.equal((await log.offsetsForTimes('future', dated9999))[0]!.offset, 0)
      assert.equal((await log.offsetsForTimes('future', dated9999 + 1))[0]!.offset, 5)

      assert.equal((await log.enforceRetention(t0 + 7 * day + 1)).deletedRecords, 4)
      assert.equal(await log.earliest('future', 0), 4)
      assert.equal((await log.offsetsForTimes('future', t0))[0]!.offset, 4)
      assert.equal((await log.enforceRetention(t0 + hour + 7 * day + 1)).deletedRecords, 1)
      assert.equal(await log.earliest('future', 0), 5)
    } finally {
      await close()
    }
  })

  test('a clock that steps back between appends deletes nothing early, and retention still goes in offset order', async () => {
    const clock = testClock(t0)
    const logs = new Capture()
    const options: SqliteLogOptions = {
      path: newPath(),
      retention: { maxAgeMs: 7 * day },
      clock: clock.now,
      logger: pino({ level: 'warn' }, logs),
    }
    let log = await openSqliteLog(options)
    try {
      const append = (value: string) => log.append([{ topic: 'skew', value }])
      await append('a')
      clock.set(t0 + hour)
      await append('b')
      clock.set(t0 - day)
      await append('c')
      // Still behind after a reopen: the running maximum comes back from the file.
      await log.close()
      log = await openSqliteLog(options)
      await append('d')
      clock.set(t0 + 2 * hour)
      await append('e')

      const peek = new Database(options.path, { readonly: true })
      const stamped = peek.prepare('SELECT appended_high FROM batches ORDER BY base_offset').pluck().all()
      peek.close()
      assert.deepEqual(stamped, [t0, t0 + hour, t0 + hour, t0 + hour, t0 + 2 * hour])

      const offsets = async () => (await readAll(log, { topic: 'skew', partition: 0, offset: 0 })).map((r) => r.offset)
      // c and d were appended (after b) while the clock read a day earlier.
      assert.equal((await log.enforceRetention(t0 - day + 7 * day + 1)).deletedRecords, 0)
      assert.equal((await log.enforceRetention(t0 + 7 * day)).deletedRecords, 0)
      assert.equal((await log.enforceRetention(t0 + 7 * day + 1)).deletedRecords, 1)
      assert.deepEqual(await offsets(), [1, 2, 3, 4])
      assert.equal((await log.enforceRetention(t0 + hour + 7 * day)).deletedRecords, 0)
      assert.equal((await log.enforceRetention(t0 + hour + 7 * day + 1)).deletedRecords, 3)
      assert.deepEqual(await offsets(), [4])
      assert.equal((await log.enforceRetention(t0 + 2 * hour + 7 * day + 1)).deletedRecords, 1)
      assert.deepEqual(await offsets(), [])
      assert.equal(await log.earliest('skew', 0), 5)

      // A pass while the clock is behind the append times says so.
      const warnings = () => logs.text.split('\n').filter((line) => line.includes('"aheadMs"'))
      assert.equal(warnings().length, 0)
      await append('f')
      assert.equal((await log.enforceRetention(t0 - day)).deletedRecords, 0)
      assert.equal(warnings().length, 1)
      assert.equal((JSON.parse(warnings()[0]!) as { aheadMs: number }).aheadMs, 2 * hour + day)
    } finally {
      await log.close()
    }
  })
})

describe('sqlite log: other processes', () => {
  const child = join(repoRoot, 'test/log/sqlite-child.ts')

  function start(args: string[]) {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, ...args], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
    }) as ChildProcessWithoutNullStreams
    let out = ''
    let err = ''
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    proc.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
    /** The complete lines printed so far, parsed. */
    const lines = () =>
      out
        .split('\n')
        .slice(0, -1)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
    async function until(what: string, ready: () => boolean, ms = 20_000) {
      await within(
        (async () => {
          while (!ready()) {
            if (proc.exitCode !== null) throw new Error(`child exited with ${proc.exitCode}: ${err}`)
            await new Promise((resolve) => setTimeout(resolve, 10))
          }
        })(),
        `${what} (stderr: ${err})`,
        ms,
      )
    }
    return { proc, lines, until, stderr: () => err }
  }

  test('a reader in another process sees appends made here', async () => {
    const { log, close, path } = await fresh({ defaultPartitions: 3 })
    const follower = start(['follow', path, 'crossing', '1', '5'])
    try {
      await log.partitions('crossing')
      await follower.until('the follower to start', () => follower.lines().length >= 1)
      await log.append([1, 2].map((i) => ({ topic: 'crossing', partition: 1, value: `v${i}` })))
      await new Promise((resolve) => setTimeout(resolve, 100))
      await log.append([3, 4, 5].map((i) => ({ topic: 'crossing', partition: 1, value: `v${i}` })))
      await follower.until('the follower to print five records', () => follower.lines().length >= 6, 10_000)
      const [code] = (await within(once(follower.proc, 'exit'), 'the follower to exit')) as [number]
      assert.equal(code, 0, follower.stderr())
      assert.deepEqual(follower.lines().slice(1), [1, 2, 3, 4, 5].map((i) => ({ offset: i - 1, value: `v${i}` })))
    } finally {
      follower.proc.kill('SIGKILL')
      await close()
    }
  })

  test('after kill -9 mid-stream, every acknowledged record is in the log exactly once', async () => {
    const path = newPath()
    const producer = start(['produce', path, 'crash', 'normal'])
    const acked = () => producer.lines().flatMap((line) => (line['acks'] as Array<[number, number, string]> | undefined) ?? [])
    try {
      await producer.until('300 acknowledged records', () => acked().length >= 300)
    } finally {
      producer.proc.kill('SIGKILL')
    }
    await within(once(producer.proc, 'exit'), 'the producer to die')
    const acks = acked()

    const log = await openSqliteLog({ path, defaultPartitions: 3 })
    try {
      const where = new Map<string, string>()
      for (let partition = 0; partition < 3; partition++) {
        const records = await readAll(log, { topic: 'crash', partition, offset: 0 })
        assert.deepEqual(
          records.map((r) => r.offset),
          [...records.keys()],
          `partition ${partition} has gaps`,
        )
        for (const record of records) {
          const value = record.value.toString()
          assert.ok(!where.has(value), `${value} is in the log twice`)
          where.set(value, `${partition}:${record.offset}`)
        }
      }
      for (const [partition, offset, value] of acks) {
        assert.equal(where.get(value), `${partition}:${offset}`, `acknowledged ${value} is not where it was acknowledged`)
      }
      assert.ok(where.size >= acks.length)
    } finally {
      await log.close()
    }
  })
})

test('a version 1 file (with the index by time) is migrated to the current version and still searches by time', async () => {
  const path = join(tempDir(), 'v1.sqlite')
  const first = await openSqliteLog({ path, sync: 'normal' })
  await first.append([1000, 2000, 3000].map((timestamp) => ({ topic: 'old.topic', value: `at ${timestamp}`, timestamp })))
  await first.close()
  downgrade(path, 1)
  const reopened = await openSqliteLog({ path, sync: 'normal' })
  try {
    const [found] = await reopened.offsetsForTimes('old.topic', 1500)
    assert.equal(found!.offset, 1)
  } finally {
    await reopened.close()
  }
  const check = new Database(path, { readonly: true })
  assert.equal(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), String(sqliteSchemaVersion))
  assert.equal(check.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'batches_by_time'").pluck().get(), 0)
  check.close()
})

test('a version 2 file (no append times) is migrated: every record stays readable, and its batches get min(ts_high, migration time)', async () => {
  const path = join(tempDir(), 'v2.sqlite')
  const migratedAt = t0
  const stamps = [dated1971, migratedAt - day, dated9999, migratedAt - 2 * hour]
  const writer = await openSqliteLog({ path, sync: 'normal', clock: () => migratedAt - 30 * day })
  for (const timestamp of stamps) await writer.append([{ topic: 'legacy', value: `at ${timestamp}`, timestamp }])
  await writer.close()
  downgrade(path, 2)

  const clock = testClock(migratedAt)
  const log = await openSqliteLog({ path, sync: 'normal', retention: { maxAgeMs: 7 * day }, clock: clock.now })
  try {
    const records = await readAll(log, { topic: 'legacy', partition: 0, offset: 0 })
    assert.deepEqual(
      records.map((r) => [r.offset, r.timestamp, r.value.toString()]),
      stamps.map((timestamp, i) => [i, timestamp, `at ${timestamp}`]),
    )
    assert.equal((await log.offsetsForTimes('legacy', migratedAt - day - 1))[0]!.offset, 1)
    assert.equal((await log.offsetsForTimes('legacy', migratedAt - hour))[0]!.offset, 2)
    clock.set(migratedAt + hour)
    const [appended] = await log.append([{ topic: 'legacy', value: 'after the migration' }])
    assert.equal(appended!.offset, 4)

    // Append times by the rule: 1971 (what version 2 deleted at its next pass as well), a day
    // before the migration, then the migration time for the batch dated 9999 and the one after it.
    assert.equal((await log.enforceRetention(migratedAt)).deletedRecords, 1)
    assert.equal(await log.earliest('legacy', 0), 1)
    assert.equal((await log.enforceRetention(migratedAt - day + 7 * day)).deletedRecords, 0)
    assert.equal((await log.enforceRetention(migratedAt - day + 7 * day + 1)).deletedRecords, 1)
    assert.equal((await log.enforceRetention(migratedAt + 7 * day)).deletedRecords, 0)
    assert.equal((await log.enforceRetention(migratedAt + 7 * day + 1)).deletedRecords, 2)
    assert.equal(await log.earliest('legacy', 0), 4)
    assert.equal((await log.enforceRetention(migratedAt + hour + 7 * day)).deletedRecords, 0)
    assert.equal((await log.enforceRetention(migratedAt + hour + 7 * day + 1)).deletedRecords, 1)
    assert.equal(await log.earliest('legacy', 0), 5)
  } finally {
    await log.close()
  }
  const check = new Database(path, { readonly: true })
  assert.equal(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), String(sqliteSchemaVersion))
  assert.deepEqual(check.prepare("SELECT name FROM pragma_table_info('batches')").pluck().all(), [...batchColumnsV2, 'appended_high'])
  check.close()
})
