/**
 * The embedded event log: one SQLite file (WAL mode) through better-sqlite3, with one
 * connection that both writes and reads.
 *
 * Storage: like Kafka, records are stored in record batches. Each group commit writes, per
 * partition, one row holding the records' timestamps, keys and values (batch.ts), with the
 * batch's base offset, record count, min and max timestamp and size beside it (layout in
 * sqlite-schema.ts). A 100-event request is one INSERT per partition, and 10,000 concurrent
 * single-event appends are one transaction with one or a few rows.
 *
 * Running values per batch make seeks cheap, as Kafka's time index and segment positions do:
 * `ts_high` is the largest timestamp up to and including the batch, `bytes_end` the partition's
 * payload bytes up to and including it, and `appended_high` the latest append time up to and
 * including it. They only grow with the offset, so "first record at or after time T" is an
 * index seek on ts_high, and retention by age or size deletes a prefix of the partition.
 *
 * Retention by age goes by append time, not by record timestamp: the timestamp is the event's
 * meta.dt, chosen by the producer, so by it an event dated 1971 would be deleted about a minute
 * after its 201 and one dated 9999 would stop age retention of its partition for good. Each
 * group commit stamps its rows with one time, the log's clock when the write lock is taken.
 *
 * Group commit: append() validates, picks partitions and queues; the queue is written on the
 * next turn of the event loop (or at once when it is large) in one transaction, and every
 * caller's promise settles after that transaction: all committed, or all rejected.
 *
 * A full disk fails the group commit (SQLITE_FULL): its appends are rejected with EVP_LOG_FULL,
 * nothing of them is written, and health() reports the log unwritable until the file system has
 * room again. Nothing has to be reopened: the next commit after space returns succeeds.
 *
 * Following: a reader at the end waits on its partition. Appends through this log wake it at
 * once; appends by another connection (another process on the same file) are noticed by
 * polling `PRAGMA data_version` every pollIntervalMs while someone waits.
 */
import { startCheckpointer } from './checkpointer.ts'
import { channel } from 'node:diagnostics_channel'
import { mkdirSync } from 'node:fs'
import { statfs } from 'node:fs/promises'
import { dirname } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import Database from 'better-sqlite3'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { EventplaneError, toEventplaneError } from '../core/errors.ts'
import { decodeBatch, encodeBatch, encodedSize, firstIndexAtOrAfter, type PendingRecord } from './batch.ts'
import { createLogMetrics } from './metrics.ts'
import { keyBytes, partitionOf } from './partitioner.ts'
import { appendedHighSql, prepareDatabase } from './sqlite-schema.ts'
import type {
  AppendRecord,
  EventLog,
  LogHealth,
  LogRecord,
  Position,
  ReadFrom,
  ReadOptions,
  TopicPartitionOffset,
} from './types.ts'
import {
  assertOffset,
  assertPartition,
  assertRecordShape,
  assertSearchTime,
  assertTopic,
  invalid,
  isValidTopic,
  readArguments,
  recordError,
  settled,
  type RecordLimits,
} from './validate.ts'

export interface SqliteLogOptions {
  /** The SQLite file; created with its folder when missing. Other processes may open it too. */
  path: string
  /** Partitions of a topic created on first use (default 1). */
  defaultPartitions?: number
  /** Partitions of particular topics when they are created. An existing topic keeps its count. */
  topicPartitions?: Record<string, number>
  retention?: {
    /**
     * Delete batches appended more than this long ago, by the append time (the clock at the
     * group commit), never by the records' timestamps, which producers choose.
     */
    maxAgeMs?: number
    /** Per partition: delete the oldest batches until the partition holds at most this many payload bytes. */
    maxBytes?: number
    /** How often retention runs on its own (default 60 s); `enforceRetention()` runs it now. */
    checkIntervalMs?: number
  }
  /** How often a waiting reader checks for appends made by another process (default 250 ms). */
  pollIntervalMs?: number
  /**
   * `full` (default) syncs the WAL to disk at every group commit: an acknowledged append
   * survives a power loss. `normal` survives a crash of the process (kill -9) but may lose the
   * last commits on power loss; it is several times faster on slow disks.
   */
  sync?: 'normal' | 'full'
  /** How long a write waits for another process's write lock before failing (default 5000 ms). */
  busyTimeoutMs?: number
  logger?: Logger
  /** Metrics `eventplane_log_*` are registered here and removed by close(). */
  registry?: Registry
  /**
   * The `topic` label of the log's metrics for a topic (default: the topic). Topics made from
   * request input (streams of a /regex/ key) should share one label, so series stay bounded.
   */
  topicLabel?: (topic: string) => string
  /**
   * The clock of append times and retention, in integer ms since the epoch (default
   * `Date.now`): it stamps each group commit, gives records without a timestamp theirs, and is
   * retention's "now". Tests replace it rather than sleep.
   */
  clock?: () => number
}

export interface RetentionResult {
  deletedBatches: number
  deletedRecords: number
  deletedBytes: number
}

/** Counters for tests and diagnostics. */
export interface SqliteLogStats {
  /** Transactions that committed appends. */
  groupCommits: number
  /** Transactions that failed; every append in them was rejected. */
  failedGroupCommits: number
  /** append() calls acknowledged. */
  appends: number
  /** Records acknowledged. */
  records: number
  /** Batch rows written. */
  batches: number
}

export interface SqliteEventLog extends EventLog {
  readonly kind: 'sqlite'
  readonly path: string
  /**
   * Applies the retention settings now; `now` defaults to the log's clock. A no-op without
   * `retention.maxAgeMs` or `retention.maxBytes`.
   */
  enforceRetention(now?: number): Promise<RetentionResult>
  stats(): SqliteLogStats
}

/** A batch row is cut at this many payload bytes (one larger record gets a row of its own). */
const maxBatchBytes = 1 << 20
/** A queued group is flushed at once when it gets this large, rather than on the next turn. */
const maxGroupBytes = 16 << 20
const maxGroupAppends = 20_000
/** A read page stops at this many bytes of batches, whatever batchSize says. */
const maxPageBytes = 4 << 20
const defaultBatchSize = 1000
/** What one record may be: Kafka's topic names; a row of its own for a large one. */
const recordLimits: RecordLimits = { maxTopicLength: 249, maxRecordBytes: 256 << 20 }
/** Retention deletes this many batches per transaction, then lets the event loop run. */
const retentionChunk = 500
/** While group commits keep failing alike, one log line says so this often (the first is logged at once). */
const failureReportMs = 10_000
/**
 * After a commit failed for a full disk, health() reports the log writable again once the file
 * system has this much free, and at least twice the group that failed (its pages go to the WAL,
 * then to the database file).
 */
const minRoomBytes = 1 << 20
/**
 * Or once commits have worked again and none failed for a full disk for this long: a limit that
 * free space does not show (a quota) must not keep the log unready after it is lifted.
 */
const fullForgottenMs = 10_000

export const appendChannelName = 'eventplane:log:append'
const appendChannel = channel(appendChannelName)

/** What `eventplane:log:append` publishes after each group commit. */
export interface AppendMessage {
  kind: 'sqlite'
  path: string
  appends: number
  records: number
  durationMs: number
  error?: EventplaneError
}

interface TopicState {
  name: string
  partitions: number
  /** Row id of each partition, by partition number. */
  ids: number[]
  /** Where the next keyless append goes (sticky per call, round robin between calls). */
  nextKeyless: number
}

/** The tail of a partition, as the writer last saw it. */
interface Tail {
  next: number
  tsHigh: number
  bytesEnd: number
  appendedHigh: number
}

/** A record waiting for the group commit: what is encoded, and where it goes (one object per record). */
interface QueuedRecord extends PendingRecord {
  partId: number
  topic: string
  partition: number
}

interface QueuedAppend {
  items: QueuedRecord[]
  resolve: (positions: Position[]) => void
  reject: (error: EventplaneError) => void
}

/**
 * How long the append times in a partition may be ahead of the clock before retention warns:
 * further than the clock's usual corrections, and than the time between two commits.
 */
const clockAheadWarningMs = 60_000

interface BatchRow {
  base_offset: number
  count: number
  bytes: number
  payload: Buffer
}

/**
 * Opens (or creates) an embedded event log in a SQLite file. Any call that names a topic
 * creates it when it does not exist, as Kafka does with auto.create.topics.enable, so a reader
 * can wait on a topic that has not been written yet. Buffers passed to append() must not be
 * changed until its promise settles (they are encoded at the group commit, not copied first).
 *
 * @example
 * const log = await openSqliteLog({ path: 'data/events.db', defaultPartitions: 3 })
 * const [position] = await log.append([{ topic: 'dc1.test.event', key: 'user-1', value: '{"a":1}' }])
 * for await (const record of log.read({ ...position!, offset: 0 }, { follow: false })) console.log(record.offset)
 * await log.close()
 */
export async function openSqliteLog(options: SqliteLogOptions): Promise<SqliteEventLog> {
  const path = options.path
  const defaultPartitions = options.defaultPartitions ?? 1
  const topicPartitions = { ...options.topicPartitions }
  const retention = options.retention ?? {}
  const pollIntervalMs = options.pollIntervalMs ?? 250
  const clock = options.clock ?? Date.now
  checkOptions(options, defaultPartitions, topicPartitions)
  const logger = options.logger?.child({ component: 'log', kind: 'sqlite', path })

  let db: Database.Database
  try {
    mkdirSync(dirname(path), { recursive: true })
    db = new Database(path, { timeout: options.busyTimeoutMs ?? 5000 })
  } catch (error) {
    throw new EventplaneError('EVP_LOG_UNAVAILABLE', `cannot open event log ${path}: ${messageOf(error)}`, { cause: error })
  }
  try {
    prepareDatabase(db, path, options.sync ?? 'full', clock())
  } catch (error) {
    db.close()
    throw toEventplaneError(error, 'EVP_LOG_UNAVAILABLE')
  }

  const sql = {
    dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
    topic: db.prepare<[string], number>('SELECT partitions FROM topics WHERE name = ?').pluck(),
    topics: db.prepare<[], string>('SELECT name FROM topics ORDER BY name').pluck(),
    partitionIds: db.prepare<[string], { id: number; partition: number }>(
      'SELECT id, partition FROM partitions WHERE topic = ? ORDER BY partition',
    ),
    allPartitions: db.prepare<[], { id: number; topic: string; partition: number }>(
      'SELECT id, topic, partition FROM partitions ORDER BY id',
    ),
    createTopic: db.prepare<[string, number, number]>(
      'INSERT OR IGNORE INTO topics (name, partitions, created_ms) VALUES (?, ?, ?)',
    ),
    createPartition: db.prepare<[string, number]>('INSERT OR IGNORE INTO partitions (topic, partition) VALUES (?, ?)'),
    startOffset: db.prepare<[number], number>('SELECT start_offset FROM partitions WHERE id = ?').pluck(),
    last: db.prepare<[number], { next: number; ts_high: number; bytes_end: number; appended_high: number }>(
      `SELECT base_offset + count AS next, ts_high, bytes_end, ${appendedHighSql} AS appended_high
       FROM batches WHERE part_id = ? ORDER BY base_offset DESC LIMIT 1`,
    ),
    first: db.prepare<[number], number>(
      'SELECT base_offset FROM batches WHERE part_id = ? ORDER BY base_offset LIMIT 1',
    ).pluck(),
    insert: db.prepare<[number, number, number, number, number, number, number, number, Buffer, number]>(
      `INSERT INTO batches (part_id, base_offset, count, min_ts, max_ts, ts_high, bytes, bytes_end, payload, appended_high)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    atOrBefore: db.prepare<[number, number], { base_offset: number; count: number }>(
      'SELECT base_offset, count FROM batches WHERE part_id = ? AND base_offset <= ? ORDER BY base_offset DESC LIMIT 1',
    ),
    page: db.prepare<[number, number], BatchRow>(
      'SELECT base_offset, count, bytes, payload FROM batches WHERE part_id = ? AND base_offset >= ? ORDER BY base_offset',
    ),
    probe: db.prepare<[number, number], { base_offset: number; count: number; ts_high: number }>(
      'SELECT base_offset, count, ts_high FROM batches WHERE part_id = ? AND base_offset <= ? ORDER BY base_offset DESC LIMIT 1',
    ),
    timeBatch: db.prepare<[number, number, number], BatchRow>(
      `SELECT base_offset, count, bytes, payload FROM batches
       WHERE part_id = ? AND base_offset >= ? AND max_ts >= ? ORDER BY base_offset LIMIT 1`,
    ),
    retentionHead: db.prepare<
      [number, number],
      { base_offset: number; count: number; appended_high: number; bytes: number; bytes_end: number }
    >(
      `SELECT base_offset, count, ${appendedHighSql} AS appended_high, bytes, bytes_end
       FROM batches WHERE part_id = ? ORDER BY base_offset LIMIT ?`,
    ),
    deleteThrough: db.prepare<[number, number]>('DELETE FROM batches WHERE part_id = ? AND base_offset <= ?'),
    moveStart: db.prepare<[number, number]>('UPDATE partitions SET start_offset = max(start_offset, ?) WHERE id = ?'),
  }

  const topicCache = new Map<string, TopicState>()
  const tails = new Map<number, Tail>()
  const warnedCounts = new Set<string>()
  let seenVersion = sql.dataVersion.get()!
  let closed = false
  const stats: SqliteLogStats = { groupCommits: 0, failedGroupCommits: 0, appends: 0, records: 0, batches: 0 }
  const metrics = options.registry === undefined ? undefined : createLogMetrics(options.registry)
  const topicLabel = options.topicLabel ?? ((topic: string) => topic)

  function ensureOpen(): void {
    if (closed) throw new EventplaneError('EVP_LOG_CLOSED', `event log ${path} is closed`)
  }

  // Another process (a second server, a CLI) may append to or create topics in the same file.
  // SQLite's data_version changes exactly when another connection commits, so a cheap check
  // tells whether the cached tails are stale and whether waiting readers should look again.
  function noticeOtherWriters(): void {
    const version = sql.dataVersion.get()!
    if (version === seenVersion) return
    seenVersion = version
    tails.clear()
    wakeAll()
  }

  function configuredPartitions(topic: string): number {
    return Object.hasOwn(topicPartitions, topic) ? topicPartitions[topic]! : defaultPartitions
  }

  const createTopic = db.transaction((name: string, partitions: number) => {
    sql.createTopic.run(name, partitions, Date.now())
    const actual = sql.topic.get(name)!
    for (let p = 0; p < actual; p++) sql.createPartition.run(name, p)
  })

  /** The topic, created with its configured partition count when it does not exist. */
  function ensureTopic(name: string): TopicState {
    const cached = topicCache.get(name)
    if (cached !== undefined) return cached
    assertTopic(name)
    let partitions = sql.topic.get(name)
    if (partitions === undefined) {
      outsideTransaction()
      createTopic.immediate(name, configuredPartitions(name))
      partitions = sql.topic.get(name)!
      logger?.info({ topic: name, partitions }, 'topic created')
    } else if (partitions !== configuredPartitions(name) && !warnedCounts.has(name)) {
      warnedCounts.add(name)
      logger?.warn(
        { topic: name, partitions, configured: configuredPartitions(name) },
        'topic exists with another partition count than configured; keeping the existing count',
      )
    }
    const ids = sql.partitionIds.all(name).map((row) => row.id)
    if (ids.length !== partitions) throw new EventplaneError('EVP_LOG_UNAVAILABLE', `topic ${name} is incomplete in ${path}`)
    const state: TopicState = { name, partitions, ids, nextKeyless: 0 }
    topicCache.set(name, state)
    return state
  }

  function partitionId(topic: string, partition: unknown): number {
    const state = ensureTopic(topic)
    assertPartition(topic, partition, state.partitions)
    return state.ids[partition]!
  }

  function tailOf(partId: number): Tail {
    let tail = tails.get(partId)
    if (tail === undefined) {
      const last = sql.last.get(partId)
      tail =
        last === undefined
          ? { next: sql.startOffset.get(partId)!, tsHigh: 0, bytesEnd: 0, appendedHigh: 0 }
          : { next: last.next, tsHigh: last.ts_high, bytesEnd: last.bytes_end, appendedHigh: last.appended_high }
      tails.set(partId, tail)
    }
    return tail
  }

  function latestOffset(partId: number): number {
    noticeOtherWriters()
    return tailOf(partId).next
  }

  function earliestOffset(partId: number): number {
    return sql.first.get(partId) ?? sql.startOffset.get(partId)!
  }

  /** Kafka's ListOffsets by time: the first offset whose timestamp is >= `timestamp`, else the end. */
  function offsetForTime(partId: number, timestamp: number): number {
    const candidate = firstBatchReaching(partId, timestamp)
    if (candidate !== undefined) {
      // ts_high may come from a batch retention has deleted since; the scan then moves on to
      // the first remaining batch that really holds such a record.
      const batch = sql.timeBatch.get(partId, candidate, timestamp)
      if (batch !== undefined) return batch.base_offset + firstIndexAtOrAfter(batch.payload, batch.count, timestamp)
    }
    return latestOffset(partId)
  }

  /**
   * Base offset of the first batch whose ts_high (the largest timestamp up to it) is at least
   * `timestamp`. ts_high never decreases along the offsets, so this bisects the offset index
   * with point lookups (about log2 of the offset range of them).
   */
  function firstBatchReaching(partId: number, timestamp: number): number | undefined {
    const first = sql.first.get(partId)
    const last = sql.last.get(partId)
    if (first === undefined || last === undefined || last.ts_high < timestamp) return undefined
    let lo = first
    let hi = sql.probe.get(partId, last.next - 1)!.base_offset
    while (lo < hi) {
      const batch = sql.probe.get(partId, lo + Math.floor((hi - lo) / 2))!
      if (batch.ts_high >= timestamp) hi = batch.base_offset
      else lo = batch.base_offset + batch.count
    }
    return lo
  }

  // ---- group commit -------------------------------------------------------------------------

  let queue: QueuedAppend[] = []
  let queuedBytes = 0
  let flushScheduled = false

  function schedule(): void {
    if (queuedBytes >= maxGroupBytes || queue.length >= maxGroupAppends) {
      flush()
    } else if (!flushScheduled) {
      flushScheduled = true
      // Commit after one more turn of the event loop, not this one: appends of requests whose
      // bytes arrive in the next poll phase then join the same transaction. With ten
      // one-event producers this took the intake from 0.31x to 0.41x of a bare server
      // (bench/intake, alternated runs), for a few microseconds of latency.
      setImmediate(() => setImmediate(flush))
    }
  }

  interface PartitionGroup {
    partId: number
    topic: string
    partition: number
    records: PendingRecord[]
    /** For records[i]: the positions array of its append, and its index there. */
    owners: Position[][]
    indexes: number[]
  }

  /** Inserts the batches and fills in the positions; returns how many batch rows it wrote. */
  const writeGroup = db.transaction((groups: PartitionGroup[], staged: Map<number, Tail>): number => {
    noticeOtherWriters()
    // Read under the write lock, so that commits by other processes on this machine get times
    // in commit order too.
    const appendedAt = Math.floor(clock())
    let batches = 0
    for (const group of groups) {
      const tail = { ...tailOf(group.partId) }
      // A running maximum, as ts_high is: the batches past the age are then always a prefix
      // (all that retention may delete), and a batch appended after the clock stepped back is
      // never taken for older than the batches before it. For a clock that jumps forward and
      // then back this chooses to keep records rather than free space: batches appended after
      // the jump keep the time it reached, so age retention of the partition pauses until the
      // clock catches up (size retention does not), and no record goes sooner than maxAgeMs
      // after it was appended. Retention warns while the clock is behind.
      tail.appendedHigh = Math.max(tail.appendedHigh, appendedAt)
      const { records, owners, indexes } = group
      let start = 0
      while (start < records.length) {
        let end = start
        let size = 0
        let minTs = Number.MAX_SAFE_INTEGER
        let maxTs = 0
        do {
          const record = records[end]!
          size += encodedSize(record)
          if (record.timestamp < minTs) minTs = record.timestamp
          if (record.timestamp > maxTs) maxTs = record.timestamp
          end++
        } while (end < records.length && size + encodedSize(records[end]!) <= maxBatchBytes)
        const payload = encodeBatch(records, start, end, size)
        const count = end - start
        tail.tsHigh = Math.max(tail.tsHigh, maxTs)
        tail.bytesEnd += payload.length
        const { next, tsHigh, bytesEnd, appendedHigh } = tail
        sql.insert.run(group.partId, next, count, minTs, maxTs, tsHigh, payload.length, bytesEnd, payload, appendedHigh)
        for (let i = start; i < end; i++) {
          owners[i]![indexes[i]!] = { topic: group.topic, partition: group.partition, offset: tail.next + i - start }
        }
        tail.next += count
        batches++
        start = end
      }
      staged.set(group.partId, tail)
    }
    return batches
  })

  /** Writes every queued append in one transaction; all of them commit, or all are rejected. */
  function flush(): void {
    flushScheduled = false
    if (queue.length === 0) return
    const appends = queue
    const groupBytes = queuedBytes
    queue = []
    queuedBytes = 0

    const byPartition = new Map<number, PartitionGroup>()
    const positions: Position[][] = []
    let recordCount = 0
    for (const append of appends) {
      const own: Position[] = new Array(append.items.length)
      positions.push(own)
      append.items.forEach((item, index) => {
        let group = byPartition.get(item.partId)
        if (group === undefined) {
          group = { partId: item.partId, topic: item.topic, partition: item.partition, records: [], owners: [], indexes: [] }
          byPartition.set(item.partId, group)
        }
        group.records.push(item)
        group.owners.push(own)
        group.indexes.push(index)
      })
      recordCount += append.items.length
    }

    const started = performance.now()
    const staged = new Map<number, Tail>()
    let failure: EventplaneError | undefined
    try {
      if (closed) throw new EventplaneError('EVP_LOG_UNAVAILABLE', `event log ${path} closed before the append was written`)
      outsideTransaction()
      stats.batches += writeGroup.immediate([...byPartition.values()], staged)
    } catch (error) {
      failure = isDiskFull(error)
        ? new EventplaneError('EVP_LOG_FULL', `append to ${path} failed, nothing of it was written: the disk is full (${messageOf(error)})`, { cause: error })
        : new EventplaneError('EVP_LOG_UNAVAILABLE', `append to ${path} failed: ${messageOf(error)}`, { cause: error })
    }
    const durationMs = performance.now() - started

    if (failure !== undefined) {
      // The transaction rolled back (SQLite rolls back a failed COMMIT itself; better-sqlite3 a
      // failed statement): forget tails, which may have been read inside it, so that the next
      // commit reads them again and offsets go on from what is really in the file.
      tails.clear()
      try {
        outsideTransaction()
      } catch {
        // The next group commit tries again before it writes, and fails if it cannot.
      }
      stats.failedGroupCommits++
      metrics?.failures.inc()
      if (failure.code === 'EVP_LOG_FULL') noteDiskFull(groupBytes)
      reportFailure(failure, appends.length, recordCount)
      for (const append of appends) append.reject(failure)
    } else {
      lastCommitAt = Date.now()
      if (failing !== undefined) {
        logger?.info({ failures: failing.failures, failingMs: lastCommitAt - failing.since }, 'group commits work again')
        failing = undefined
      }
      for (const [partId, tail] of staged) tails.set(partId, tail)
      stats.groupCommits++
      stats.appends += appends.length
      stats.records += recordCount
      if (metrics !== undefined) {
        metrics.duration.observe(durationMs / 1000)
        metrics.groupSize.observe(appends.length)
        const perTopic = new Map<string, number>()
        for (const group of byPartition.values())
          perTopic.set(group.topic, (perTopic.get(group.topic) ?? 0) + group.records.length)
        for (const [topic, n] of perTopic) metrics.records.inc({ topic: topicLabel(topic) }, n)
      }
      appends.forEach((append, i) => append.resolve(positions[i]!))
      for (const partId of staged.keys()) wake(partId)
    }
    if (appendChannel.hasSubscribers) {
      const message: AppendMessage = { kind: 'sqlite', path, appends: appends.length, records: recordCount, durationMs }
      if (failure !== undefined) message.error = failure
      appendChannel.publish(message)
    }
  }

  /**
   * better-sqlite3 runs a transaction function inside an open transaction as a SAVEPOINT, whose
   * RELEASE commits nothing. A transaction left open (by a ROLLBACK that failed after a failed
   * COMMIT) would have every later group commit acknowledged without being durable, and readers
   * of this connection would see its rows; so each write starts outside of any transaction.
   */
  function outsideTransaction(): void {
    if (!db.inTransaction) return
    try {
      db.exec('ROLLBACK')
    } catch (error) {
      logger?.error({ err: error }, 'rolling back a failed transaction failed')
    }
    if (db.inTransaction) throw new EventplaneError('EVP_LOG_UNAVAILABLE', `${path} is left inside a failed transaction that cannot be rolled back`)
  }

  /** A run of failed group commits: since when, how many, and when it was last logged. */
  let failing: { since: number; failures: number; reportedAt: number; message: string } | undefined
  /**
   * Commits fail for a full disk: since when, the last time, and the largest group that failed
   * (payload bytes). health() reports the log unwritable until there is room for such a group.
   */
  let diskFull: { since: number; lastAt: number; bytes: number } | undefined
  let lastCommitAt = 0

  function noteDiskFull(bytes: number): void {
    const now = Date.now()
    diskFull ??= { since: now, lastAt: now, bytes: 0 }
    diskFull.lastAt = now
    diskFull.bytes = Math.max(diskFull.bytes, bytes)
  }

  /**
   * Logs a failed group commit: the first of a run and any that fails otherwise at once, the
   * rest counted and summed up every failureReportMs. A full disk fails every commit, hundreds a
   * second, until space returns; a line with a stack for each would fill the disk of the logs too.
   */
  function reportFailure(failure: EventplaneError, appendCount: number, records: number): void {
    const now = Date.now()
    if (failing === undefined || failing.message !== failure.message) {
      failing = { since: failing?.since ?? now, failures: (failing?.failures ?? 0) + 1, reportedAt: now, message: failure.message }
      logger?.error({ err: failure, appends: appendCount, records }, 'group commit failed; until one works, failures like it are logged every 10 s')
      return
    }
    failing.failures++
    if (now - failing.reportedAt < failureReportMs) return
    failing.reportedAt = now
    logger?.error({ code: failure.code, reason: failure.message, failures: failing.failures, failingMs: now - failing.since }, 'group commits are still failing')
  }

  /**
   * Unwritable while commits fail for a full disk. It ends when the file system has room for
   * the largest group that failed (so readiness returns when space does, without waiting for
   * traffic), or when commits have worked again and none failed for a while (a quota, which
   * free space does not show).
   */
  async function health(): Promise<LogHealth> {
    if (closed) return { writable: false, readable: false, reason: 'the event log is closed' }
    const full = diskFull
    if (full === undefined) return { writable: true, readable: true }
    const free = await freeBytes()
    const recovered =
      (free !== undefined && free >= Math.max(minRoomBytes, 2 * full.bytes)) ||
      (lastCommitAt > full.lastAt && Date.now() - full.lastAt > fullForgottenMs)
    if (recovered) {
      if (diskFull === full) diskFull = undefined
      return { writable: true, readable: true }
    }
    return {
      writable: false,
      readable: true,
      reason: `the event log's disk is full (${free ?? 'unknown'} bytes free): appends are refused with EVP_LOG_FULL since ${new Date(full.since).toISOString()}`,
    }
  }

  async function freeBytes(): Promise<number | undefined> {
    try {
      const fs = await statfs(dirname(path))
      return fs.bavail * fs.bsize
    } catch {
      return undefined
    }
  }

  function append(records: readonly AppendRecord[]): Promise<Position[]> {
    try {
      ensureOpen()
      if (!Array.isArray(records)) throw invalid('append takes an array of records')
      if (records.length === 0) return Promise.resolve([])
      const now = clock()
      const items: QueuedRecord[] = new Array(records.length)
      let sticky: Map<TopicState, number> | undefined
      let bytes = 0
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!
        assertRecordShape(record, i)
        const topic = ensureTopic(record.topic)
        const key = record.key === undefined || record.key === null ? null : keyBytes(record.key)
        if (record.partition !== undefined) assertPartition(topic.name, record.partition, topic.partitions)
        const partition = partitionOf(record, key, topic.partitions, () => {
          sticky ??= new Map()
          let chosen = sticky.get(topic)
          if (chosen === undefined) {
            chosen = topic.nextKeyless
            topic.nextKeyless = (chosen + 1) % topic.partitions
            sticky.set(topic, chosen)
          }
          return chosen
        })
        const value = record.value
        const item: QueuedRecord = {
          timestamp: record.timestamp ?? now,
          key,
          value,
          valueBytes: typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length,
          partId: topic.ids[partition]!,
          topic: topic.name,
          partition,
        }
        bytes += encodedSize(item)
        items[i] = item
      }
      const promise = new Promise<Position[]>((resolve, reject) => {
        queue.push({ items, resolve, reject })
      })
      queuedBytes += bytes
      schedule()
      return promise
    } catch (error) {
      const e = asLogError(error)
      // Creating a topic is a write too.
      if (e.code === 'EVP_LOG_FULL') noteDiskFull(0)
      return Promise.reject(e)
    }
  }

  // ---- reading ------------------------------------------------------------------------------

  const waiters = new Map<number, Set<() => void>>()
  let waiting = 0
  let poller: NodeJS.Timeout | undefined

  function wake(partId: number): void {
    const set = waiters.get(partId)
    if (set === undefined) return
    waiters.delete(partId)
    for (const resume of set) resume()
  }

  function wakeAll(): void {
    for (const partId of [...waiters.keys()]) wake(partId)
  }

  /**
   * Resolves when the partition may have new records: at once for appends made through this
   * log, within pollIntervalMs for appends by another process, or when aborted or closed.
   */
  function waitForAppend(partId: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted === true || closed) return resolve()
      let set = waiters.get(partId)
      if (set === undefined) waiters.set(partId, (set = new Set()))
      const resume = () => {
        waiters.get(partId)?.delete(resume)
        signal?.removeEventListener('abort', resume)
        if (--waiting === 0) {
          clearInterval(poller)
          poller = undefined
        }
        resolve()
      }
      set.add(resume)
      signal?.addEventListener('abort', resume, { once: true })
      // The poller is referenced on purpose: a reader that follows the log keeps the process
      // alive, as an open socket would.
      if (waiting++ === 0) poller = setInterval(poll, pollIntervalMs)
    })
  }

  function poll(): void {
    try {
      if (!closed) noticeOtherWriters()
    } catch (error) {
      logger?.warn({ err: error }, 'checking the log file for appends by other processes failed')
    }
  }

  /** Decoded records from `next` on: whole batches, up to about batchSize records. */
  function readPage(partId: number, topic: string, partition: number, next: number, batchSize: number): LogRecord[] {
    const containing = sql.atOrBefore.get(partId, next)
    const start = containing !== undefined && containing.base_offset + containing.count > next ? containing.base_offset : next
    const records: LogRecord[] = []
    let bytes = 0
    for (const row of sql.page.iterate(partId, start)) {
      const decoded = decodeBatch(row.payload, row.count, topic, partition, row.base_offset, next)
      for (const record of decoded) records.push(record)
      bytes += row.bytes
      if (records.length >= batchSize || bytes >= maxPageBytes) break
    }
    return records
  }

  async function* read(from: ReadFrom, readOptions: ReadOptions = {}): AsyncGenerator<LogRecord, void, undefined> {
    ensureOpen()
    const { topic, partition, signal, follow, batchSize } = readArguments(from, readOptions, defaultBatchSize)
    let next: number
    let partId: number
    try {
      partId = partitionId(topic, partition)
      if ('offset' in from) {
        assertOffset(from.offset)
        // Past the end, a reader waits at the end: the next record it sees is the next appended.
        next = Math.min(from.offset, latestOffset(partId))
      } else if ('timestamp' in from) {
        assertSearchTime(from.timestamp)
        next = offsetForTime(partId, from.timestamp)
      } else {
        throw invalid('read needs an offset or a timestamp')
      }
    } catch (error) {
      throw asLogError(error)
    }

    // A function, so that TypeScript does not narrow `closed` and `aborted` across awaits.
    const stopped = () => closed || signal?.aborted === true
    while (!stopped()) {
      let page: LogRecord[]
      try {
        page = readPage(partId, topic, partition, next, batchSize)
      } catch (error) {
        if (closed) return
        throw asLogError(error)
      }
      if (page.length === 0) {
        if (!follow) return
        await waitForAppend(partId, signal)
        continue
      }
      for (const record of page) {
        yield record
        if (stopped()) return
      }
      next = page[page.length - 1]!.offset + 1
    }
  }

  // ---- retention ----------------------------------------------------------------------------

  let retentionRunning: Promise<RetentionResult> | undefined

  const deletePrefix = db.transaction((partId: number, lastBase: number, newStart: number) => {
    sql.deleteThrough.run(partId, lastBase)
    sql.moveStart.run(newStart, partId)
  })

  async function runRetention(now: number): Promise<RetentionResult> {
    const result: RetentionResult = { deletedBatches: 0, deletedRecords: 0, deletedBytes: 0 }
    const { maxAgeMs, maxBytes } = retention
    if (maxAgeMs === undefined && maxBytes === undefined) return result
    // A batch goes once maxAgeMs has passed since its append time (strictly: never sooner).
    const ageCutoff = maxAgeMs === undefined ? -1 : now - maxAgeMs
    let aheadOfClock = 0
    for (const part of sql.allPartitions.all()) {
      for (;;) {
        if (closed) return result
        const tail = sql.last.get(part.id)
        if (tail === undefined) break
        if (maxAgeMs !== undefined) aheadOfClock = Math.max(aheadOfClock, tail.appended_high - now)
        // A batch goes while what follows it is still more than maxBytes: the partition ends at
        // most maxBytes large. Both running values grow with the offset, so this is a prefix.
        const sizeCutoff = maxBytes === undefined ? -1 : tail.bytes_end - maxBytes
        const head = sql.retentionHead.all(part.id, retentionChunk)
        const expired = (batch: (typeof head)[number]) =>
          batch.appended_high < ageCutoff || batch.bytes_end - batch.bytes < sizeCutoff
        let n = 0
        while (n < head.length && expired(head[n]!)) n++
        if (n === 0) break
        const lastDeleted = head[n - 1]!
        outsideTransaction()
        deletePrefix.immediate(part.id, lastDeleted.base_offset, lastDeleted.base_offset + lastDeleted.count)
        let records = 0
        let bytes = 0
        for (let i = 0; i < n; i++) {
          records += head[i]!.count
          bytes += head[i]!.bytes
        }
        result.deletedBatches += n
        result.deletedRecords += records
        result.deletedBytes += bytes
        logger?.debug({ topic: part.topic, partition: part.partition, batches: n, records }, 'retention deleted batches')
        if (n < head.length) break
        await nextTurn()
      }
    }
    if (result.deletedBatches > 0) logger?.info({ ...result }, 'retention deleted old records')
    if (aheadOfClock > clockAheadWarningMs) {
      logger?.warn(
        { aheadMs: aheadOfClock },
        'append times in the log are ahead of the clock (it stepped back); age retention waits until it passes them',
      )
    }
    return result
  }

  async function enforceRetention(now = clock()): Promise<RetentionResult> {
    ensureOpen()
    // One run at a time: a call during a run waits for it, then runs with its own clock.
    while (retentionRunning !== undefined) await retentionRunning.catch(() => undefined)
    ensureOpen()
    const run = runRetention(now)
    retentionRunning = run
    try {
      return await run
    } catch (error) {
      throw asLogError(error)
    } finally {
      retentionRunning = undefined
    }
  }

  const checkpointer = startCheckpointer({ path, intervalMs: 250, busyTimeoutMs: options.busyTimeoutMs ?? 5000, logger })

  let retentionTimer: NodeJS.Timeout | undefined
  if (retention.maxAgeMs !== undefined || retention.maxBytes !== undefined) {
    retentionTimer = setInterval(() => {
      if (retentionRunning !== undefined) return
      enforceRetention().catch((error: unknown) => {
        if (!closed) logger?.error({ err: error }, 'retention failed; will try again')
      })
    }, retention.checkIntervalMs ?? 60_000)
    retentionTimer.unref()
  }

  // ---- the rest of the interface ------------------------------------------------------------

  async function guarded<T>(work: () => T): Promise<T> {
    ensureOpen()
    try {
      return work()
    } catch (error) {
      throw asLogError(error)
    }
  }

  const log: SqliteEventLog = {
    kind: 'sqlite',
    path,
    append,
    appendEach: (records) => settled(append, records),
    health,
    checkRecord: (record) => recordError(record, recordLimits),
    read,
    partitions: (topic) => guarded(() => ensureTopic(topic).partitions),
    topics: () => guarded(() => sql.topics.all()),
    earliest: (topic, partition) => guarded(() => earliestOffset(partitionId(topic, partition))),
    latest: (topic, partition) => guarded(() => latestOffset(partitionId(topic, partition))),
    offsetsForTimes: (topic, timestamp) =>
      guarded((): TopicPartitionOffset[] => {
        const state = ensureTopic(topic)
        assertSearchTime(timestamp)
        return state.ids.map((partId, partition) => ({ topic, partition, offset: offsetForTime(partId, timestamp) }))
      }),
    enforceRetention,
    stats: () => ({ ...stats }),
    async close() {
      if (closed) return
      flush()
      closed = true
      clearInterval(retentionTimer)
      clearInterval(poller)
      wakeAll()
      await checkpointer.stop()
      try {
        db.close()
      } catch (error) {
        logger?.error({ err: error }, 'closing the log file failed')
      }
      metrics?.remove()
    },
  }
  return log
}

function checkOptions(options: SqliteLogOptions, defaultPartitions: number, topicPartitions: Record<string, number>) {
  if (typeof options.path !== 'string' || options.path === '' || options.path === ':memory:') {
    throw invalid('path must name a SQLite file')
  }
  const isCount = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 100_000
  if (!isCount(defaultPartitions)) throw invalid(`defaultPartitions must be an integer >= 1, not ${defaultPartitions}`)
  for (const [topic, n] of Object.entries(topicPartitions)) {
    if (!isValidTopic(topic)) throw invalid(`topicPartitions names an invalid topic ${JSON.stringify(topic)}`)
    if (!isCount(n)) throw invalid(`topicPartitions.${topic} must be an integer >= 1, not ${n}`)
  }
  const { maxAgeMs, maxBytes, checkIntervalMs } = options.retention ?? {}
  for (const [name, value] of Object.entries({ maxAgeMs, maxBytes, checkIntervalMs, pollIntervalMs: options.pollIntervalMs })) {
    if (value !== undefined && (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value))) {
      throw invalid(`${name} must be a number >= 0, not ${String(value)}`)
    }
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') throw invalid('clock must be a function')
  if (options.sync !== undefined && options.sync !== 'normal' && options.sync !== 'full') {
    throw invalid(`sync must be "normal" or "full", not ${String(options.sync)}`)
  }
}

function asLogError(error: unknown): EventplaneError {
  if (isDiskFull(error)) return new EventplaneError('EVP_LOG_FULL', `the event log's disk is full (${messageOf(error)})`, { cause: error })
  return toEventplaneError(error, 'EVP_LOG_UNAVAILABLE')
}

/** SQLITE_FULL: a write needed more room than the file system has (ENOSPC, or a short write). */
function isDiskFull(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'SQLITE_FULL'
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
