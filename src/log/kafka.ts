/**
 * The event log on Apache Kafka (@platformatic/kafka): the same contract as the embedded SQLite
 * log (test/log/contract.ts), so intake and streams run on either.
 *
 * - Appends are group-committed: appends that arrive while the produce requests in flight are
 *   out go together in the next one. Each in-flight request has an idempotent producer of its
 *   own (the client keeps one producer's sequence numbers right only with one request in flight),
 *   so one append is always in order, and concurrent appends may land in either order.
 *   `acks=all`, idempotent; a record's partition is chosen here exactly as the SQLite log
 *   chooses it (murmur2 of the key, as Kafka's default partitioner, or of its affinity; other
 *   keyless records of one append stick to one partition), and its timestamp is the caller's
 *   (for events: `meta.dt`).
 * - Reads of every partition go through one fetch loop per log that long-polls the leaders for
 *   all open readers at once (a Kafka consumer without a group, as KafkaSSE assigns partitions
 *   itself), so a thousand readers cost one request per broker per round, not a thousand
 *   (kafka-fetch.ts). It decodes each record batch on its own, in any of Kafka's codecs
 *   (kafka-codecs.ts): one it cannot decode stops only the readers of its partition, with
 *   EVP_LOG_RECORD_UNDECODABLE.
 * - Appends are answered per record within `appendDeadlineMs` (appendEach): the records of
 *   partitions Kafka took are positioned even when another partition failed; failed ones are
 *   retried (fresh metadata, the same producer and records, so Kafka's idempotence drops what
 *   it already has) until the deadline, then answered EVP_LOG_NOT_WRITTEN (certainly not
 *   written) or EVP_LOG_OUTCOME_UNKNOWN (sent, unanswered). A group that retries keeps its
 *   producer but lets the next groups go out with others. Other broker errors (reads, lookups)
 *   are EVP_LOG_UNAVAILABLE; readers keep waiting with backoff per partition.
 */
import {
  Admin,
  Consumer,
  kGetApi,
  kGetConnection,
  ProduceAcks,
  Producer,
  type MessageToProduce,
} from '@platformatic/kafka'
import { connect } from 'node:net'
import type { ConnectionOptions } from 'node:tls'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { EventplaneError } from '../core/errors.ts'
import { decompressor, type Codec } from './kafka-codecs.ts'
import { Fetcher } from './kafka-fetch.ts'
import { createKafkaLogMetrics, createLogMetrics } from './metrics.ts'
import { partitionOf } from './partitioner.ts'
import type { AppendOutcome, AppendRecord, EventLog, LogHealth, LogRecord, Position, ReadFrom, ReadOptions, TopicPartitionOffset } from './types.ts'
import { assertOffset, assertPartition, assertRecordShape, assertSearchTime, assertTopic, invalid, readArguments, recordError, type RecordLimits } from './validate.ts'

export interface KafkaLogOptions {
  /** Bootstrap brokers as host:port. */
  brokers: string[]
  /** Client id the broker sees (default `eventplane`). */
  clientId?: string
  /** Partitions of a topic this log creates (default 1). */
  defaultPartitions?: number
  /** Partitions of named topics this log creates, overriding defaultPartitions. */
  topicPartitions?: Record<string, number>
  /** Replication factor of topics this log creates (default -1: the broker's default.replication.factor). */
  replicationFactor?: number
  /** Create missing topics (default true); false: a missing topic is EVP_LOG_TOPIC_MISSING. */
  createTopics?: boolean
  /**
   * Prepended to every topic name in Kafka and removed again on the way back, so several
   * installations (or test runs) can share a cluster without seeing each other's topics.
   */
  topicNamespace?: string
  /** Timeout of one request to a broker (default 10 s). */
  requestTimeoutMs?: number
  /** Retries of one request inside the client, with backoff (default 3); appends retry on their own until their deadline. */
  retries?: number
  /**
   * How long an append may take, from the call to the answer (default 5000 ms). Records not
   * acknowledged by then are answered EVP_LOG_NOT_WRITTEN or EVP_LOG_OUTCOME_UNKNOWN; until then
   * failed sends are retried (with fresh metadata, so a moved leader is found).
   */
  appendDeadlineMs?: number
  /** Authentication: SASL PLAIN or SCRAM with a user and password. */
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string }
  /** TLS to the brokers (node:tls options: ca, cert, key, servername, rejectUnauthorized). */
  tls?: ConnectionOptions
  /** How long a topic's partition count is trusted before it is looked up again (default 5 minutes). */
  metadataMaxAgeMs?: number
  /** Produce requests in flight at once, each from a producer of its own (default 5). */
  maxInFlight?: number
  /**
   * `message.timestamp.after.max.ms` of topics this log creates: how far ahead of the broker's
   * clock a record's timestamp may be (default: no limit; the intake passes its meta.dt window).
   */
  maxTimestampAheadMs?: number | null
  /** Longest a fetch waits at the broker for new records (default 100 ms). */
  fetchWaitMs?: number
  /**
   * Test hook, not for deployments: read batches in these codecs as undecodable, as if this
   * server did not know them, so tests can make a batch that cannot be decoded on a real broker.
   */
  unsupportedCodecs?: readonly Codec[]
  logger?: Logger
  /** Where the `eventplane_log_*` metrics go (the same as the SQLite log's). */
  registry?: Registry
  /**
   * The `topic` label of the log's metrics for a topic (default: the topic). Topics made from
   * request input (streams of a /regex/ key) should share one label, so series stay bounded.
   */
  topicLabel?: (topic: string) => string
}

/** How long after a failed append health still says appends are failing (unless one worked since). */
const failingMs = 10_000
/** How long health waits for Kafka's answers. */
const healthTimeoutMs = 1_500
/** How long a write problem lasts before health reports it (a leader election is not an outage). */
const healthGraceMs = 1_000

/** Most bytes of records in one produce request unless one append alone is larger. */
const maxRequestBytes = 1 << 20
const defaultBatchSize = 500

/** Topic configs for topics this log creates: events up to 16 MiB, timestamps as far ahead as the intake takes. */
const maxMessageBytes = 16 << 20
function createdTopicConfigs(maxTimestampAheadMs: number | null | undefined) {
  return [
    { name: 'max.message.bytes', value: String(maxMessageBytes) },
    { name: 'message.timestamp.after.max.ms', value: maxTimestampAheadMs == null ? '9223372036854775807' : String(maxTimestampAheadMs) },
  ]
}
/** Largest timestamp delta within one partition of a request that the client encodes right (see send). */
const maxTimestampDelta = 2 ** 31 - 1

interface Item {
  topic: string
  partition: number
  key: Buffer | null
  value: Buffer
  timestamp: number
}

interface PendingAppend {
  items: Item[]
  bytes: number
  /** When its records are answered at the latest (Date.now() ms). */
  deadline: number
  outcomes: AppendOutcome[]
  /** Records not settled yet. */
  left: number
  resolve: (outcomes: AppendOutcome[]) => void
}

/** One record of an append, in a produce attempt. */
interface Entry {
  append: PendingAppend
  index: number
  item: Item
}

/** A producer busy with one group; replaced when its sequence numbers cannot be trusted. */
interface Slot {
  producer: Producer
  /** The group's first attempt is over: another group may start. */
  release: () => void
}

/**
 * What became of a partition's records that Kafka did not acknowledge: `not-written` (refused
 * before writing, or never sent), `unknown` (sent, and no answer says what happened),
 * `refused` (Kafka will not take these records: too large, bad timestamp), `fatal` (not
 * allowed: retrying will not help).
 */
type FailureKind = 'not-written' | 'unknown' | 'refused' | 'fatal'

/** Less time than this before an append's deadline, and its records are not sent (they are not written). */
const minimumSendMs = 5

interface Sent {
  /** Positions of the records that Kafka acknowledged, by index of the items sent. */
  positions: Array<Position | undefined>
  error: unknown
  /** Partitions (`topic\0partition`) whose records were not acknowledged. */
  failed: Map<string, FailureKind>
  /** Given up waiting: the request may still be answered. */
  abandoned: boolean
}

export interface KafkaEventLog extends EventLog {
  readonly kind: 'kafka'
  readonly brokers: readonly string[]
}

export async function openKafkaLog(options: KafkaLogOptions): Promise<KafkaEventLog> {
  if (!Array.isArray(options.brokers) || options.brokers.length === 0 || !options.brokers.every((b) => typeof b === 'string' && /^[^\s:]+:\d+$/.test(b))) {
    throw new EventplaneError('EVP_CONFIG_INVALID', `event_log.kafka.brokers must list host:port pairs, not ${JSON.stringify(options.brokers)}`)
  }
  const clientId = options.clientId ?? 'eventplane'
  const base = {
    clientId,
    bootstrapBrokers: options.brokers,
    timeout: options.requestTimeoutMs ?? 10_000,
    connectTimeout: Math.min(options.requestTimeoutMs ?? 10_000, 5_000),
    // The client's own limit for an answer on a connection (its default is 30 s, whatever `timeout` says).
    requestTimeout: options.requestTimeoutMs ?? 10_000,
    retries: options.retries ?? 3,
    retryDelay: (_client: unknown, _operation: string, attempt: number) => Math.min(100 * 2 ** attempt, 2_000),
    ...(options.sasl === undefined ? {} : { sasl: { ...options.sasl } }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  }
  const logger = options.logger
  const createTopics = options.createTopics ?? true
  const replicationFactor = options.replicationFactor ?? -1
  const defaultPartitions = options.defaultPartitions ?? 1
  const topicPartitions = options.topicPartitions ?? {}
  const fetchWaitMs = options.fetchWaitMs ?? 100
  const metadataMaxAgeMs = options.metadataMaxAgeMs ?? 5 * 60_000
  const namespace = options.topicNamespace ?? ''
  if (namespace !== '' && !/^[A-Za-z0-9._-]{1,200}$/.test(namespace)) {
    throw new EventplaneError('EVP_CONFIG_INVALID', `event_log.kafka.topic_namespace must be 1 to 200 of [A-Za-z0-9._-], not ${JSON.stringify(namespace)}`)
  }
  /** The name of a topic in Kafka. */
  const inKafka = (topic: string) => namespace + topic
  // Topics this log creates take records of up to max.message.bytes (a record batch of one record
  // adds about 70 bytes of headers); topics made by others may take less, which Kafka then says.
  const recordLimits: RecordLimits = { maxTopicLength: 249 - namespace.length, maxRecordBytes: maxMessageBytes - 1024 }

  const metrics = options.registry === undefined ? undefined : createLogMetrics(options.registry)
  const topicLabel = options.topicLabel ?? ((topic: string) => topic)
  const kafkaMetrics = options.registry === undefined ? undefined : createKafkaLogMetrics(options.registry)
  const admin = new Admin(base)
  // Separate clients, so that a reader's long poll never queues an offset lookup behind it.
  const offsetsClient = new Consumer({ ...base, groupId: `${clientId}-offsets` })
  const fetchClient = new Consumer({ ...base, groupId: `${clientId}-reader` })
  const appendDeadlineMs = options.appendDeadlineMs ?? 5_000
  if (!Number.isInteger(appendDeadlineMs) || appendDeadlineMs < 100) throw new EventplaneError('EVP_CONFIG_INVALID', `appendDeadlineMs must be an integer of at least 100, not ${appendDeadlineMs}`)
  // Producers do not retry inside the client: produce() retries until the append deadline, and
  // no request may outlast it.
  const produceTimeoutMs = Math.min(base.timeout, appendDeadlineMs)
  const newProducer = () =>
    new TolerantProducer({
      ...base,
      timeout: produceTimeoutMs,
      requestTimeout: produceTimeoutMs,
      connectTimeout: Math.min(base.connectTimeout, produceTimeoutMs),
      // false, not 0: an idempotent producer of this client takes 0 or 1 retries as "forever".
      retries: false,
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
    })
  const maxInFlight = options.maxInFlight ?? 5
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 16) throw new EventplaneError('EVP_CONFIG_INVALID', `maxInFlight must be 1 to 16, not ${maxInFlight}`)
  /** Producers that are free; one is taken for each request in flight. */
  const idle: Producer[] = Array.from({ length: maxInFlight }, newProducer)
  const all = new Set(idle)
  /**
   * Groups on their first attempt. A group whose records for some partition failed keeps its
   * producer while it retries them, but no longer counts here: the next groups go out with
   * other producers (up to `maxProducers` in all), so records for healthy partitions never wait
   * behind a partition whose leader is gone.
   */
  let flights = 0
  const maxProducers = maxInFlight * 4
  const canStart = () => flights < maxInFlight && (idle.length > 0 || all.size < maxProducers)

  // Fail fast on a wrong address: one metadata round trip.
  try {
    await admin.metadata({ topics: [] })
  } catch (error) {
    await Promise.allSettled([admin.close(), offsetsClient.close(), fetchClient.close(), ...[...all].map((p) => p.close())])
    throw unavailable(error, `cannot reach Kafka at ${options.brokers.join(', ')}`)
  }

  let closing = false
  let closed = false
  /** Work that started before close and that close waits for. */
  const inFlight = new Set<Promise<unknown>>()
  function track<T>(promise: Promise<T>): Promise<T> {
    inFlight.add(promise)
    void promise.then(
      () => inFlight.delete(promise),
      () => inFlight.delete(promise),
    )
    return promise
  }
  function ensureOpen(): void {
    if (closing) throw new EventplaneError('EVP_LOG_CLOSED', 'the event log is closed')
  }

  // ---- topics -------------------------------------------------------------------------------

  const partitionCounts = new Map<string, { count: number; checkedAt: number }>()
  const resolving = new Map<string, Promise<number>>()
  const nextKeyless = new Map<string, number>()

  function partitionCount(topic: string): Promise<number> {
    assertTopic(topic)
    if (namespace.length + topic.length > 249) {
      return Promise.reject(invalid(`topic name ${topic} is too long with the topic namespace ${namespace} (at most 249 characters in all)`, { topic }))
    }
    const known = partitionCounts.get(topic)
    if (known !== undefined) {
      // Partitions can be added to a topic: look again now and then (Kafka's producers do every
      // 5 minutes), in the background, going on with the count known meanwhile.
      if (Date.now() - known.checkedAt > metadataMaxAgeMs && !resolving.has(topic)) {
        known.checkedAt = Date.now()
        const refresh = track(topicMetadata(topic)).then(
          (metadata) => {
            if (metadata !== undefined && metadata.partitionsCount !== known.count) {
              logger?.warn({ topic, from: known.count, to: metadata.partitionsCount }, 'the topic has a new partition count; keys now map to other partitions')
              // The client maps a partition it does not know onto the ones it knows (modulo its
              // count): its producers must see the new count before any record is sent there.
              for (const producer of all) producer.clearMetadata()
              known.count = metadata.partitionsCount
            }
          },
          (error: unknown) => logger?.warn({ err: error, topic }, 'checking the partition count of a topic failed'),
        )
        resolving.set(topic, refresh.then(() => known.count).finally(() => resolving.delete(topic)))
      }
      return Promise.resolve(known.count)
    }
    let pending = resolving.get(topic)
    if (pending === undefined) {
      pending = resolveTopic(topic).finally(() => resolving.delete(topic))
      resolving.set(topic, pending)
    }
    return pending
  }

  async function topicMetadata(topic: string) {
    const name = inKafka(topic)
    // Asked for an unknown topic, the client retries with backoff before it gives up: ask first.
    if (!(await admin.listTopics()).includes(name)) return undefined
    try {
      const metadata = await admin.metadata({ topics: [name], forceUpdate: true })
      return metadata.topics.get(name)
    } catch (error) {
      if ((error as { code?: string }).code === 'PLT_KFK_USER' && /unknown topic/i.test((error as Error).message)) return undefined
      if (findApiId(error, 'UNKNOWN_TOPIC_OR_PARTITION')) return undefined
      throw error
    }
  }

  async function resolveTopic(topic: string): Promise<number> {
    try {
      let metadata = await topicMetadata(topic)
      if (metadata === undefined) {
        if (!createTopics) {
          throw new EventplaneError('EVP_LOG_TOPIC_MISSING', `topic ${topic} does not exist in Kafka, and event_log.kafka.create_topics is false: create it first`, {
            details: { topic },
          })
        }
        const partitions = topicPartitions[topic] ?? defaultPartitions
        try {
          await admin.createTopics({ topics: [inKafka(topic)], partitions, replicas: replicationFactor, configs: createdTopicConfigs(options.maxTimestampAheadMs) })
          logger?.info({ topic: inKafka(topic), partitions, replicationFactor }, 'created Kafka topic')
        } catch (error) {
          if (!findApiId(error, 'TOPIC_ALREADY_EXISTS')) throw error
        }
        // A new topic's partitions get leaders a moment after the topic exists.
        for (let attempt = 0; ; attempt++) {
          metadata = await topicMetadata(topic)
          if (metadata !== undefined && metadata.partitions.length > 0 && metadata.partitions.every((p) => p.leader >= 0)) break
          if (attempt === 50) throw new EventplaneError('EVP_LOG_UNAVAILABLE', `topic ${topic} was created but its partitions got no leader within 10 s`)
          await sleep(Math.min(20 * (attempt + 1), 200))
        }
      }
      partitionCounts.set(topic, { count: metadata!.partitionsCount, checkedAt: Date.now() })
      return metadata!.partitionsCount
    } catch (error) {
      throw unavailable(error, `looking up topic ${topic}`)
    }
  }

  async function checkedPartition(topic: string, partition: unknown): Promise<number> {
    const count = await partitionCount(topic)
    assertPartition(topic, partition, count)
    return partition
  }

  // ---- offsets ------------------------------------------------------------------------------

  /** ListOffsets for one partition: -1n latest, -2n earliest, or a time (-1 back when none is at or after it). */
  async function listOffset(topic: string, partition: number, timestamp: bigint): Promise<number> {
    try {
      const name = inKafka(topic)
      const offsets = await offsetsClient.listOffsets({ topics: [name], partitions: { [name]: [partition] }, timestamp })
      const value = offsets.get(name)?.[partition]
      if (value === undefined) throw new Error(`ListOffsets gave no offset for ${topic}/${partition}`)
      return Number(value)
    } catch (error) {
      throw unavailable(error, `listing offsets of ${topic}/${partition}`)
    }
  }
  const latestOf = (topic: string, partition: number) => listOffset(topic, partition, -1n)
  const earliestOf = (topic: string, partition: number) => listOffset(topic, partition, -2n)
  async function offsetForTime(topic: string, partition: number, timestamp: number): Promise<number> {
    // The end first: a record committed between the two lookups is after it, so starting there
    // when no record at or after the time was found skips nothing. (The end looked up after, a
    // record committed in between, with a later time, would be skipped.)
    const end = await latestOf(topic, partition)
    const offset = await listOffset(topic, partition, BigInt(Math.ceil(timestamp)))
    return offset >= 0 ? offset : end
  }

  // ---- appending ----------------------------------------------------------------------------

  let queue: PendingAppend[] = []
  /** Appends taken or waiting, for the in-flight gauge and for health. */
  let pendingRecords = 0
  /** When appends last worked and last failed, and since when they fail (the first failure after a success). */
  const writeState = { lastOk: 0, lastFailure: 0, failingSince: 0, failure: '' }

  function append(records: readonly AppendRecord[]): Promise<Position[]> {
    return appendEach(records).then((outcomes) => {
      for (const outcome of outcomes) if (outcome instanceof EventplaneError) throw outcome
      return outcomes as Position[]
    })
  }

  function appendEach(records: readonly AppendRecord[]): Promise<AppendOutcome[]> {
    try {
      if (!Array.isArray(records)) throw invalid('append takes an array of records')
      if (closing) return Promise.resolve(records.map(() => new EventplaneError('EVP_LOG_CLOSED', 'the event log is closed')))
      if (records.length === 0) return Promise.resolve([])
      records.forEach(assertRecordShape)
    } catch (error) {
      return Promise.reject(asLogError(error))
    }
    return track(enqueue(records, Date.now() + appendDeadlineMs))
  }

  async function enqueue(records: readonly AppendRecord[], deadline: number): Promise<AppendOutcome[]> {
    const topics = [...new Set(records.map((r) => r.topic))]
    const counts = new Map<string, number>()
    try {
      const lookups = Promise.all(topics.map(async (topic) => counts.set(topic, await partitionCount(topic))))
      if ((await beforeDeadline(lookups, deadline)) === timedOut) {
        throw new EventplaneError('EVP_LOG_NOT_WRITTEN', `looking up the partitions of ${topics.join(', ')} took longer than the append deadline (${appendDeadlineMs} ms)`)
      }
    } catch (error) {
      const e = asLogError(error)
      return records.map(() => (e.code === 'EVP_LOG_UNAVAILABLE' ? notWritten(e.message, e) : e))
    }
    const now = Date.now()
    const items: Item[] = new Array(records.length)
    const sticky = new Map<string, number>()
    let bytes = 0
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!
      const partitions = counts.get(record.topic)!
      const key = record.key === undefined || record.key === null ? null : toBuffer(record.key)
      if (record.partition !== undefined) {
        try {
          assertPartition(record.topic, record.partition, partitions)
        } catch (error) {
          throw asLogError(error)
        }
      }
      const partition = partitionOf(record, key, partitions, () => {
        let chosen = sticky.get(record.topic)
        if (chosen === undefined) {
          chosen = (nextKeyless.get(record.topic) ?? 0) % partitions
          nextKeyless.set(record.topic, (chosen + 1) % partitions)
          sticky.set(record.topic, chosen)
        }
        return chosen
      })
      const value = toBuffer(record.value)
      bytes += value.length + (key?.length ?? 0) + 32
      items[i] = { topic: record.topic, partition, key, value, timestamp: record.timestamp ?? now }
    }
    return new Promise<AppendOutcome[]>((resolve) => {
      pendingRecords += items.length
      kafkaMetrics?.pending.set(pendingRecords)
      queue.push({ items, bytes, deadline, outcomes: new Array(items.length), left: items.length, resolve })
      schedule()
    })
  }

  /** Settles one record of an append; the append resolves when its last record is settled. */
  function settle(append: PendingAppend, index: number, outcome: AppendOutcome): void {
    append.outcomes[index] = outcome
    pendingRecords--
    if (--append.left === 0) {
      kafkaMetrics?.pending.set(pendingRecords)
      append.resolve(append.outcomes)
    }
  }

  let flushScheduled = false
  let expiryTimer: NodeJS.Timeout | undefined

  function schedule(): void {
    if (queue.length === 0) return
    if (!canStart()) {
      // Every producer is busy (a broker is slow or away): appends that wait past their deadline
      // are answered "not written" then, not when a producer is free again.
      if (expiryTimer === undefined) {
        expiryTimer = setTimeout(() => {
          expiryTimer = undefined
          expire()
          schedule()
        }, Math.max(0, queue[0]!.deadline - Date.now()) + 1)
      }
      return
    }
    if (flushScheduled) return
    flushScheduled = true
    // One turn of the event loop, so that appends of the same moment go together.
    setImmediate(flush)
  }

  function expire(): void {
    const now = Date.now()
    let n = 0
    while (n < queue.length && queue[n]!.deadline <= now) n++
    if (n === 0) return
    const expired = queue.slice(0, n)
    queue = queue.slice(n)
    for (const append of expired) {
      const failure = notWritten(`no producer was free within the append deadline (${appendDeadlineMs} ms): earlier appends are still waiting for Kafka`)
      append.items.forEach((_, index) => settle(append, index, failure))
    }
    recordFailure(`appends waited longer than ${appendDeadlineMs} ms`, expired[0]!.deadline - appendDeadlineMs)
  }

  function flush(): void {
    flushScheduled = false
    expire()
    while (queue.length > 0 && canStart()) {
      let bytes = 0
      let taken = 0
      while (taken < queue.length && (taken === 0 || bytes + queue[taken]!.bytes <= maxRequestBytes)) bytes += queue[taken++]!.bytes
      const group = queue.slice(0, taken)
      queue = queue.slice(taken)
      let producer = idle.pop()
      if (producer === undefined) all.add((producer = newProducer()))
      flights++
      let flying = true
      const slot: Slot = {
        producer,
        release: () => {
          if (!flying) return
          flying = false
          flights--
          schedule()
        },
      }
      void produce(group, slot).finally(() => {
        slot.release()
        idle.push(slot.producer)
        schedule()
      })
    }
    // Appends left waiting (every producer busy) are answered at their deadline at the latest.
    if (queue.length > 0) schedule()
  }

  /**
   * Sends a group of appends, retrying what failed until the earliest deadline among them.
   * Records are answered per partition: those of partitions Kafka took are positioned even when
   * another partition failed. A retry sends exactly the records that failed with the same
   * producer and sequence numbers, so a broker that had written them answers with their offsets
   * instead of writing them twice (Kafka's idempotent producer). Past the deadline, what is
   * left is EVP_LOG_NOT_WRITTEN when every attempt was refused before it was written, else
   * EVP_LOG_OUTCOME_UNKNOWN; then (only then) the producer is replaced, as its sequence numbers
   * for those partitions may be behind the broker's.
   *
   * Keep that rule: a producer whose send went unanswered sends nothing but the same records
   * again. @platformatic/kafka 1.35 does not move its sequence numbers on after a failed send;
   * if the broker had written that batch, different records sent next by the same producer are
   * taken as its duplicate and "acknowledged" at its offset, without being written
   * (test/kafka/slow-broker.test.ts would see such an event missing).
   */
  async function produce(group: PendingAppend[], slot: Slot): Promise<void> {
    let entries: Entry[] = []
    let deadline = Number.POSITIVE_INFINITY
    for (const append of group) {
      if (append.deadline < deadline) deadline = append.deadline
      for (let index = 0; index < append.items.length; index++) entries.push({ append, index, item: append.items[index]! })
    }
    const started = process.hrtime.bigint()
    const unknown = new Set<string>()
    let lastError: unknown
    let replace = false
    for (let attempt = 0; entries.length > 0; attempt++) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) break
      // One request per partition leader, each answered on its own: a leader that is gone (its
      // requests fail or hang) holds up only its own partitions' records. Partitions without a
      // leader now are not sent; they wait for the next attempt.
      const { byLeader, leaderless } = await route(slot.producer, entries, remaining)
      const attempts = await Promise.all(
        [...byLeader.values()].map(async (own) => {
          // A lookup that took the time left sends nothing: records sent with no time to be
          // answered would be of unknown outcome, when they are known not to be written.
          const left = deadline - Date.now()
          const sent: Sent =
            left < minimumSendMs
              ? { positions: [], error: new Error(`the append deadline passed while looking up where partitions are (${Math.max(0, Math.round(left))} ms left)`), failed: new Map(), abandoned: false }
              : await sendWithin(own.map((e) => e.item), slot.producer, left)
          // The first answer ends the group's first attempt: another group may start.
          slot.release()
          const rest: Entry[] = []
          own.forEach((entry, i) => {
            const position = sent.positions[i]
            if (position === undefined) rest.push(entry)
            else settle(entry.append, entry.index, position)
          })
          if (rest.length < own.length) writeState.lastOk = Date.now()
          return { sent, rest }
        }),
      )
      slot.release()
      entries = [...leaderless, ...attempts.flatMap((a) => a.rest)]
      if (entries.length === 0) break
      let error: unknown
      let refused = false
      let fatal = false
      for (const { sent } of attempts) {
        if (sent.error !== undefined) error = sent.error
        if (sent.abandoned) replace = true
        for (const [partition, kind] of sent.failed) {
          if (kind === 'unknown') unknown.add(partition)
          else if (kind === 'refused') refused = true
          else if (kind === 'fatal') fatal = true
        }
      }
      if (leaderless.length > 0) error ??= new Error(`no leader for ${[...new Set(leaderless.map((e) => `${e.item.topic}/${e.item.partition}`))].join(', ')}`)
      lastError = error
      if (refused && unknown.size === 0) {
        // A record Kafka will not take (its size, its timestamp): appended alone, each append
        // fails only itself.
        await refuse(entries, slot, error)
        entries = []
        break
      }
      if (fatal) break
      // Leadership may have moved (NOT_LEADER_OR_FOLLOWER, a dead leader): ask again where partitions are.
      slot.producer.clearMetadata()
      await sleep(Math.min(50 * 2 ** attempt, 1_000, Math.max(0, deadline - Date.now())))
    }
    if (entries.length > 0) {
      const reason = describe(lastError ?? new Error('no attempt was made'))
      for (const entry of entries) {
        const key = `${entry.item.topic}\0${entry.item.partition}`
        const failure = unknown.has(key)
          ? new EventplaneError('EVP_LOG_OUTCOME_UNKNOWN', `Kafka did not confirm the write of ${entry.item.topic}/${entry.item.partition} within the append deadline (${appendDeadlineMs} ms); it may still be committed: ${reason}`, { cause: lastError })
          : isRecordRefusal(lastError)
            ? new EventplaneError('EVP_LOG_INVALID_ARGUMENT', `Kafka refused the records: ${reason}`, { cause: lastError })
            : notWritten(`Kafka did not take the records of ${entry.item.topic}/${entry.item.partition} within the append deadline (${appendDeadlineMs} ms): ${reason}`, lastError)
        settle(entry.append, entry.index, failure)
      }
      metrics?.failures.inc()
      recordFailure(reason, deadline - appendDeadlineMs)
      if (unknown.size > 0) replace = true
      logFailure(lastError, entries.length, unknown.size, Number(process.hrtime.bigint() - started) / 1e6)
    }
    if (replace) {
      // Its sequence numbers may lag the broker's for partitions of unknown outcome: a new
      // producer (a new producer id) starts them afresh.
      const old = slot.producer
      all.delete(old)
      slot.producer = newProducer()
      all.add(slot.producer)
      old.close(true, () => undefined)
    }
    if (metrics !== undefined) {
      metrics.duration.observe(Number(process.hrtime.bigint() - started) / 1e9)
      metrics.groupSize.observe(group.length)
      const perTopic = new Map<string, number>()
      for (const append of group) for (const outcome of append.outcomes) if (outcome !== undefined && !(outcome instanceof EventplaneError)) perTopic.set(outcome.topic, (perTopic.get(outcome.topic) ?? 0) + 1)
      for (const [topic, n] of perTopic) metrics.records.inc({ topic: topicLabel(topic) }, n)
    }
  }

  /**
   * The entries by the leader of their partition in the producer's metadata (looked up again
   * when it was cleared), and those whose partition has no leader. A lookup that fails or takes
   * too long routes everything to one request: the send then fails and says why.
   */
  async function route(producer: Producer, entries: Entry[], ms: number): Promise<{ byLeader: Map<number, Entry[]>; leaderless: Entry[] }> {
    const byLeader = new Map<number, Entry[]>()
    const leaderless: Entry[] = []
    const topics = [...new Set(entries.map((e) => inKafka(e.item.topic)))]
    let metadata: Awaited<ReturnType<Producer['metadata']>> | typeof timedOut | undefined
    try {
      metadata = await beforeDeadline(producer.metadata({ topics }), Date.now() + ms)
    } catch {
      metadata = undefined
    }
    if (metadata === undefined || metadata === timedOut) return { byLeader: new Map([[-1, entries]]), leaderless }
    for (const entry of entries) {
      const partition = metadata.topics.get(inKafka(entry.item.topic))?.partitions[entry.item.partition]
      if (partition === undefined || partition.leader < 0 || !metadata.brokers.has(partition.leader)) leaderless.push(entry)
      else {
        const own = byLeader.get(partition.leader)
        if (own === undefined) byLeader.set(partition.leader, [entry])
        else own.push(entry)
      }
    }
    return { byLeader, leaderless }
  }

  /** Records Kafka refused for what they are: each append alone, so one refusal fails only its own. */
  async function refuse(entries: Entry[], slot: Slot, error: unknown): Promise<void> {
    const byAppend = new Map<PendingAppend, Entry[]>()
    for (const entry of entries) {
      const own = byAppend.get(entry.append)
      if (own === undefined) byAppend.set(entry.append, [entry])
      else own.push(entry)
    }
    if (byAppend.size === 1) {
      const failure = new EventplaneError('EVP_LOG_INVALID_ARGUMENT', `Kafka refused the records: ${describe(error)}`, { cause: error })
      for (const entry of entries) settle(entry.append, entry.index, failure)
      return
    }
    for (const own of byAppend.values()) {
      const sent = await sendWithin(own.map((e) => e.item), slot.producer, Math.max(1, own[0]!.append.deadline - Date.now()))
      own.forEach((entry, i) => {
        const position = sent.positions[i]
        settle(entry.append, entry.index, position ?? (isRecordRefusal(sent.error) ? new EventplaneError('EVP_LOG_INVALID_ARGUMENT', `Kafka refused the records: ${describe(sent.error)}`, { cause: sent.error }) : notWritten(describe(sent.error), sent.error)))
      })
    }
  }

  /** Sends, but gives up waiting at `ms`: the request may still be answered later (the producer is then replaced). */
  async function sendWithin(items: Item[], producer: Producer, ms: number): Promise<Sent> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<Sent>((resolve) => {
      timer = setTimeout(() => {
        const failed = new Map<string, FailureKind>()
        for (const item of items) failed.set(`${item.topic}\0${item.partition}`, 'unknown')
        resolve({ positions: [], error: new Error(`no answer from Kafka within ${Math.round(ms)} ms`), failed, abandoned: true })
      }, ms)
    })
    try {
      return await Promise.race([send(items, producer), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Produces items in order, in as few requests as the client can encode correctly:
   * @platformatic/kafka 1.x zigzag-encodes a record's timestamp delta (a varlong) with a 32-bit
   * sign shift, so a delta beyond ±2^31 ms (24.8 days) from the first record of its partition
   * in the request is written wrong. Records that far apart go in separate requests.
   * Never rejects: what failed is in `failed`, by partition.
   */
  async function send(items: Item[], producer: Producer): Promise<Sent> {
    // Nearly always every timestamp of a request lies within the limit of the first: one request.
    let low = items[0]!.timestamp
    let high = low
    for (const item of items) {
      if (item.timestamp < low) low = item.timestamp
      else if (item.timestamp > high) high = item.timestamp
    }
    const positions: Array<Position | undefined> = new Array(items.length)
    if (high - low < maxTimestampDelta) return sendRequest(items, 0, items.length, positions, producer)
    let start = 0
    let first = new Map<string, number>()
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      const key = `${item.topic}\0${item.partition}`
      const base = first.get(key)
      if (base === undefined) first.set(key, item.timestamp)
      else if (Math.abs(item.timestamp - base) >= maxTimestampDelta) {
        const sent = await sendRequest(items, start, i, positions, producer)
        if (sent.error !== undefined) return sent
        start = i
        first = new Map([[key, item.timestamp]])
      }
    }
    return sendRequest(items, start, items.length, positions, producer)
  }

  async function sendRequest(items: Item[], from: number, to: number, positions: Array<Position | undefined>, producer: Producer): Promise<Sent> {
    const messages: MessageToProduce[] = new Array(to - from)
    for (let i = from; i < to; i++) {
      const item = items[i]!
      const message: MessageToProduce = { topic: inKafka(item.topic), partition: item.partition, value: item.value, timestamp: BigInt(item.timestamp) }
      if (item.key !== null) message.key = item.key
      messages[i - from] = message
    }
    let offsets: Array<{ topic: string; partition: number; offset: bigint }> | undefined
    let error: unknown
    try {
      offsets = (await producer.send({ messages })).offsets
    } catch (cause) {
      error = cause
      offsets = (cause as { produced?: { offsets?: typeof offsets } }).produced?.offsets
    }
    // Each partition's records got consecutive offsets from its base offset, in request order.
    const next = new Map<string, number>()
    for (const { topic, partition, offset } of offsets ?? []) next.set(`${topic.slice(namespace.length)}\0${partition}`, Number(offset))
    const failed = new Map<string, FailureKind>()
    const kinds = error === undefined ? undefined : failureKinds(error, namespace)
    for (let i = from; i < to; i++) {
      const item = items[i]!
      const key = `${item.topic}\0${item.partition}`
      const offset = next.get(key)
      if (offset !== undefined) {
        next.set(key, offset + 1)
        positions[i] = { topic: item.topic, partition: item.partition, offset }
      } else if (kinds !== undefined) {
        failed.set(key, kinds.partitions.get(key) ?? kinds.rest)
      } else {
        failed.set(key, 'unknown')
        error ??= new Error(`Kafka acknowledged no offset for ${item.topic}/${item.partition}`)
      }
    }
    return { positions, error, failed, abandoned: false }
  }

  /** Failures logged in full at most every 5 s (an outage fails hundreds of groups a second); the others are counted. */
  let loggedFailureAt = 0
  let unloggedFailures = 0
  function logFailure(error: unknown, records: number, unknownPartitions: number, ms: number): void {
    if (logger === undefined) return
    const now = Date.now()
    if (now - loggedFailureAt < 5_000) {
      unloggedFailures++
      return
    }
    logger.warn({ err: error, records, unknownPartitions, ms, failuresSinceLastLogged: unloggedFailures }, 'producing to Kafka failed')
    loggedFailureAt = now
    unloggedFailures = 0
  }

  /** An append made at `madeAt` failed; one made before the last success says nothing of now. */
  function recordFailure(reason: string, madeAt: number): void {
    if (madeAt < writeState.lastOk) return
    if (writeState.lastFailure <= writeState.lastOk) writeState.failingSince = Date.now()
    writeState.lastFailure = Date.now()
    writeState.failure = reason
  }

  // ---- reading ------------------------------------------------------------------------------

  const fetcher = new Fetcher({
    client: fetchClient,
    metadata: async (topics) => admin.metadata({ topics }),
    forgetMetadata: () => admin.clearMetadata(),
    bounds: async (topic, partition) => ({ earliest: await earliestOf(topic, partition), latest: await latestOf(topic, partition) }),
    waitMs: fetchWaitMs,
    decompress: decompressor(options.unsupportedCodecs),
    undecodable: kafkaMetrics === undefined ? undefined : (topic) => kafkaMetrics.undecodableBatches.inc({ topic: topicLabel(topic) }),
    logger,
  })

  async function* read(from: ReadFrom, readOptions: ReadOptions = {}): AsyncGenerator<LogRecord, void, undefined> {
    ensureOpen()
    const { topic, partition, signal, follow, batchSize } = readArguments(from, readOptions, defaultBatchSize)
    let next: number
    let end = Number.POSITIVE_INFINITY
    try {
      await checkedPartition(topic, partition)
      const latest = await latestOf(topic, partition)
      if ('offset' in from) {
        assertOffset(from.offset)
        // Past the end, a reader waits at the end: the next record it sees is the next appended.
        next = Math.min(from.offset, latest)
      } else if ('timestamp' in from) {
        assertSearchTime(from.timestamp)
        next = await offsetForTime(topic, partition, from.timestamp)
      } else {
        throw invalid('read needs an offset or a timestamp')
      }
      if (!follow) end = latest
    } catch (error) {
      // Closed while looking up where to start: the reader ends, as it would had it started.
      if (closing && !(error instanceof EventplaneError && error.code === 'EVP_LOG_INVALID_ARGUMENT')) return
      throw asLogError(error)
    }
    const stopped = () => closing || signal?.aborted === true
    if (next >= end || stopped()) return
    const cursor = fetcher.open(topic, inKafka(topic), partition, next, batchSize)
    try {
      while (!stopped()) {
        const records = await cursor.take(signal)
        for (const record of records) {
          if (record.offset >= end) return
          yield record
          if (stopped()) return
        }
        if (cursor.next >= end) return
      }
    } finally {
      cursor.close()
    }
  }

  // ---- the rest -----------------------------------------------------------------------------

  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    ensureOpen()
    try {
      return await work()
    } catch (error) {
      throw asLogError(error)
    }
  }

  // ---- health -------------------------------------------------------------------------------

  /** min.insync.replicas of each topic (looked up once; 1 when it cannot be read). */
  const minInsync = new Map<string, number>()
  let unwritableSince: number | undefined

  /**
   * Why appends cannot work now, by Kafka's metadata (health() looks at failing appends
   * first): a partition of a topic this log writes has no leader, a leader that does not take
   * connections, or fewer in-sync replicas than the topic's min.insync.replicas (writes with
   * acks=all fail then). health() reports it only after `healthGraceMs` of it, so a leader
   * election does not flap readiness.
   */
  async function metadataProblem(): Promise<string | undefined> {
    const topics = [...partitionCounts.keys()]
    if (topics.length === 0) return undefined
    const names = topics.map(inKafka)
    const metadata = await admin.metadata({ topics: names, forceUpdate: true })
    const leaders = new Set<number>()
    for (const topic of topics) {
      const info = metadata.topics.get(inKafka(topic))
      if (info === undefined) return `topic ${topic} is missing in Kafka`
      let min = minInsync.get(topic)
      if (min === undefined) {
        min = await admin
          .describeConfigs({ resources: [{ resourceType: 2, resourceName: inKafka(topic), configurationKeys: ['min.insync.replicas'] }] })
          .then((found) => Number(found[0]?.configs.find((c) => c.name === 'min.insync.replicas')?.value ?? 1) || 1)
          .catch(() => 1)
        minInsync.set(topic, min)
      }
      for (const [partition, p] of info.partitions.entries()) {
        if (p.leader < 0 || !metadata.brokers.has(p.leader)) return `${topic}/${partition} has no leader`
        if (p.isr.length < min) return `${topic}/${partition} has ${p.isr.length} in-sync replicas, fewer than its min.insync.replicas (${min})`
        leaders.add(p.leader)
      }
    }
    for (const id of leaders) {
      const broker = metadata.brokers.get(id)!
      if (!(await reachable(broker.host, broker.port, 1_000))) return `broker ${id} (${broker.host}:${broker.port}), a partition leader, does not take connections`
    }
    return undefined
  }

  async function health(): Promise<LogHealth> {
    if (closing) return { writable: false, readable: false, reason: 'the event log is closed' }
    const now = Date.now()
    let problem: string | undefined
    let readProblem: string | undefined
    // Failing appends say so at once, since the first of them; else Kafka's metadata is asked.
    let since = now
    if (writeState.lastFailure > writeState.lastOk && now - writeState.lastFailure < failingMs) {
      problem = `appends are failing: ${writeState.failure}`
      since = writeState.failingSince
    } else {
      try {
        const found = await beforeDeadline(metadataProblem(), now + healthTimeoutMs)
        if (found === timedOut) problem = readProblem = `Kafka did not answer within ${healthTimeoutMs} ms`
        else problem = found
      } catch (error) {
        problem = readProblem = `Kafka cannot be asked: ${describe(error)}`
      }
    }
    readProblem ??= fetcher.problem(healthGraceMs)
    if (problem === undefined) unwritableSince = undefined
    else unwritableSince ??= since
    const writable = unwritableSince === undefined || Date.now() - unwritableSince < healthGraceMs
    const reason = [writable ? undefined : problem, readProblem].filter((r) => r !== undefined).join('; ')
    return { writable, readable: readProblem === undefined, ...(reason === '' ? {} : { reason }) }
  }

  const log: KafkaEventLog = {
    kind: 'kafka',
    brokers: [...options.brokers],
    append,
    appendEach,
    health,
    checkRecord: (record) => recordError(record, recordLimits),
    read,
    partitions: (topic) => guarded(() => partitionCount(topic)),
    topics: () =>
      guarded(async () => {
        try {
          return (await admin.listTopics())
            .filter((name) => name.startsWith(namespace) && !name.startsWith('__'))
            .map((name) => name.slice(namespace.length))
        } catch (error) {
          throw unavailable(error, 'listing topics')
        }
      }),
    earliest: (topic, partition) => guarded(async () => earliestOf(topic, await checkedPartition(topic, partition))),
    latest: (topic, partition) => guarded(async () => latestOf(topic, await checkedPartition(topic, partition))),
    offsetsForTimes: (topic, timestamp) =>
      guarded(async (): Promise<TopicPartitionOffset[]> => {
        const count = await partitionCount(topic)
        assertSearchTime(timestamp)
        return Promise.all(
          Array.from({ length: count }, async (_, partition) => ({ topic, partition, offset: await offsetForTime(topic, partition, timestamp) })),
        )
      }),
    async close() {
      if (closing) {
        while (!closed) await sleep(10)
        return
      }
      closing = true
      // Appends made before close are acknowledged (or refused) before the clients go.
      while (inFlight.size > 0) await Promise.allSettled([...inFlight])
      fetcher.close()
      await Promise.allSettled([...[...all].map((p) => p.close()), admin.close(), offsetsClient.close(), new Promise<void>((resolve) => fetchClient.close(true, () => resolve()))])
      metrics?.remove()
      kafkaMetrics?.remove()
      closed = true
    },
  }
  return log
}

/**
 * A producer whose metadata lookups survive partitions in trouble: the client refuses a whole
 * Metadata answer when one partition in it has an error (no leader while a broker is away), so
 * every send to the topic would fail. Here such an answer is taken as it is, with the
 * partitions in trouble leaderless (-1); produce() does not send to those.
 */
class TolerantProducer extends Producer {
  override [kGetApi]<RequestArguments extends Array<unknown>, ResponseType>(name: string, callback: (error: Error | null, api: never) => void): void {
    super[kGetApi]<RequestArguments, ResponseType>(name, (error, api) => {
      if (error !== null || name !== 'Metadata') {
        callback(error, api as never)
        return
      }
      const tolerant = (...args: unknown[]) => {
        const done = args.pop() as (error: Error | null, response?: unknown) => void
        ;(api as unknown as (...a: unknown[]) => void)(...args, (error: Error | null, response: unknown) => {
          const partial = error === null ? undefined : partitionErrorsOnly(error)
          done(partial === undefined ? error : null, partial ?? response)
        })
      }
      callback(null, tolerant as never)
    })
  }

  /** A partition whose leader is not known (-1) has no broker: fail its send, as the client would throw. */
  override [kGetConnection](broker: Parameters<Producer[typeof kGetConnection]>[0], callback: Parameters<Producer[typeof kGetConnection]>[1]): void {
    if (broker === undefined || broker === null) {
      callback(new Error(noLeaderMessage), undefined as never)
      return
    }
    super[kGetConnection](broker, callback)
  }
}

const noLeaderMessage = 'No leader is known for the partition: not sent.'

/** The answer of a Metadata error whose errors are all about single partitions, with those partitions leaderless. */
function partitionErrorsOnly(error: Error): unknown {
  const errors = (error as { errors?: Array<{ path?: unknown }> }).errors
  const response = (error as { response?: { brokers?: Array<{ nodeId: number }>; topics?: Array<{ partitions?: Array<{ errorCode: number; leaderId: number }> }> } }).response
  if (!Array.isArray(errors) || errors.length === 0 || !Array.isArray(response?.topics) || !Array.isArray(response.brokers)) return undefined
  if (!errors.every((e) => typeof e.path === 'string' && /^\/topics\/\d+\/partitions\/\d+$/.test(e.path))) return undefined
  const brokers = new Set(response.brokers.map((b) => b.nodeId))
  for (const topic of response.topics) {
    for (const partition of topic.partitions ?? []) if (partition.errorCode !== 0 || !brokers.has(partition.leaderId)) partition.leaderId = -1
  }
  return response
}

// ---- errors -----------------------------------------------------------------------------------

/** Whether the client's error (or one it aggregates) carries this Kafka error id. */
function findApiId(error: unknown, apiId: string): boolean {
  const found = (error as { findBy?: (property: string, value: unknown) => unknown }).findBy?.('apiId', apiId)
  return found !== null && found !== undefined
}

/** Refusals of the records themselves (not of the broker's state): retrying will not help. */
function isRecordRefusal(error: unknown): boolean {
  return ['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_TIMESTAMP', 'INVALID_RECORD', 'CORRUPT_MESSAGE'].some((id) => findApiId(error, id))
}

function notWritten(message: string, cause?: unknown): EventplaneError {
  return new EventplaneError('EVP_LOG_NOT_WRITTEN', message, cause === undefined ? {} : { cause })
}

/** Partition error codes that mean the partition's records were not written by that request. */
const notWrittenCodes = new Set([
  'NOT_LEADER_OR_FOLLOWER',
  'LEADER_NOT_AVAILABLE',
  'UNKNOWN_TOPIC_OR_PARTITION',
  'NOT_ENOUGH_REPLICAS',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'KAFKA_STORAGE_ERROR',
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
  'THROTTLING_QUOTA_EXCEEDED',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'CONCURRENT_TRANSACTIONS',
  'BROKER_NOT_AVAILABLE',
])
const refusedCodes = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_TIMESTAMP', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'POLICY_VIOLATION', 'INVALID_REQUIRED_ACKS'])
const fatalCodes = new Set(['TOPIC_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_VERSION', 'UNSUPPORTED_FOR_MESSAGE_FORMAT'])
/** Client errors raised before a request is written to the socket. */
const notSentMessages = [/^No leader is known/, /^Connection to .* (failed|timed out)\.?$/, /^Connection closed while waiting for ready/, /^Failed to serialize/, /^Client is closed/]

function kindOfCode(apiId: string | undefined): FailureKind {
  if (apiId === undefined) return 'unknown'
  if (notWrittenCodes.has(apiId)) return 'not-written'
  if (refusedCodes.has(apiId)) return 'refused'
  if (fatalCodes.has(apiId)) return 'fatal'
  return 'unknown'
}

/**
 * Reads a failed send: each partition a produce response answered gets that answer's kind (a
 * partition answered with success inside a failed response counts as unknown: the client did
 * not count its records, so only a retry with the same sequence numbers settles it); every
 * other partition gets `rest`, which is `not-written` only if no error in the tree could have
 * come after a produce request was written (connecting failed, metadata refused).
 */
function failureKinds(error: unknown, namespace: string): { partitions: Map<string, FailureKind>; rest: FailureKind } {
  const partitions = new Map<string, FailureKind>()
  let rest: FailureKind = 'not-written'
  const worse = (a: FailureKind, b: FailureKind): FailureKind => {
    const order: FailureKind[] = ['not-written', 'refused', 'fatal', 'unknown']
    return order.indexOf(a) >= order.indexOf(b) ? a : b
  }
  const walk = (e: unknown, depth: number): void => {
    if (depth > 8 || e === null || typeof e !== 'object') return
    const response = (e as { response?: { responses?: Array<{ name: string; partitionResponses?: Array<{ index: number; errorCode: number }> }> } }).response
    if (Array.isArray(response?.responses) && response.responses.every((r) => Array.isArray(r.partitionResponses))) {
      const byPath = new Map<string, string | undefined>()
      for (const inner of (e as { errors?: Array<{ path?: string; apiId?: string }> }).errors ?? []) if (inner.path !== undefined) byPath.set(inner.path, inner.apiId)
      response.responses.forEach((topic, i) =>
        topic.partitionResponses!.forEach((partition, j) => {
          const key = `${topic.name.slice(namespace.length)}\0${partition.index}`
          const kind = partition.errorCode === 0 ? 'unknown' : kindOfCode(byPath.get(`/responses/${i}/partition_responses/${j}`))
          partitions.set(key, worse(partitions.get(key) ?? 'not-written', kind))
        }),
      )
      return
    }
    const inner = (e as { errors?: unknown[] }).errors
    if (Array.isArray(inner) && inner.length > 0) {
      for (const child of inner) walk(child, depth + 1)
      return
    }
    const apiId = (e as { apiId?: string }).apiId
    if (apiId !== undefined) {
      rest = worse(rest, kindOfCode(apiId))
      return
    }
    const message = (e as { message?: unknown }).message
    if (typeof message === 'string' && notSentMessages.some((pattern) => pattern.test(message))) return
    rest = 'unknown'
  }
  walk(error, 0)
  return { partitions, rest }
}

const timedOut = Symbol('timed out')

/** The promise's value, or `timedOut` when the deadline (Date.now() ms) comes first. */
async function beforeDeadline<T>(promise: Promise<T>, deadline: number): Promise<T | typeof timedOut> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<typeof timedOut>((resolve) => (timer = setTimeout(() => resolve(timedOut), Math.max(0, deadline - Date.now()))))])
  } finally {
    clearTimeout(timer)
  }
}

function asLogError(error: unknown): EventplaneError {
  if (error instanceof EventplaneError) return error
  if (isRecordRefusal(error)) {
    return new EventplaneError('EVP_LOG_INVALID_ARGUMENT', `Kafka refused the records: ${describe(error)}`, { cause: error })
  }
  return unavailable(error, 'Kafka request')
}

function unavailable(error: unknown, what: string): EventplaneError {
  if (error instanceof EventplaneError) return error
  return new EventplaneError('EVP_LOG_UNAVAILABLE', `${what} failed: ${describe(error)}`, { cause: error })
}

/** The client's message, with the messages of the errors it aggregates. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const inner = (error as { errors?: unknown[] }).errors
  const causes = Array.isArray(inner) ? [...new Set(inner.map((e) => (e instanceof Error ? e.message : String(e))))].slice(0, 3) : []
  return causes.length > 0 ? `${error.message} (${causes.join('; ')})` : error.message
}

function toBuffer(value: string | Uint8Array): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

/** Whether a TCP connection to host:port opens within `ms`. */
function reachable(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(ms, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
