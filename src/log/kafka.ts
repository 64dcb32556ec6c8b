/**
 * The event log on Apache Kafka (@platformatic/kafka): the same contract as the embedded SQLite
 * log (test/log/contract.ts), so intake and streams run on either.
 *
 * - Appends are group-committed: appends that arrive while the produce requests in flight are
 *   out go together in the next one. Each in-flight request has an idempotent producer of its
 *   own (the client keeps one producer's sequence numbers right only with one request in flight),
 *   so one append is always in order, and concurrent appends may land in either order. `acks=all`, idempotent; a record's partition is
 *   chosen here exactly as the SQLite log chooses it (murmur2 of the key, as Kafka's default
 *   partitioner; keyless records of one append stick to one partition), and its timestamp is
 *   the caller's (for events: `meta.dt`).
 * - Reads of every partition go through one fetch loop per log that long-polls the leaders for
 *   all open readers at once (a Kafka consumer without a group, as KafkaSSE assigns partitions
 *   itself), so a thousand readers cost one request per broker per round, not a thousand
 *   (kafka-fetch.ts). It decodes each record batch on its own, in any of Kafka's codecs
 *   (kafka-codecs.ts): one it cannot decode stops only the readers of its partition, with
 *   EVP_LOG_RECORD_UNDECODABLE.
 * - Broker errors become EVP_LOG_UNAVAILABLE (retryable); the client retries each request a few
 *   times with backoff, readers keep waiting with bounded backoff while the broker is away.
 */
import {
  Admin,
  Consumer,
  ProduceAcks,
  Producer,
  type MessageToProduce,
} from '@platformatic/kafka'
import type { ConnectionOptions } from 'node:tls'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { EventplaneError } from '../core/errors.ts'
import { decompressor, type Codec } from './kafka-codecs.ts'
import { Fetcher } from './kafka-fetch.ts'
import { createKafkaLogMetrics, createLogMetrics } from './metrics.ts'
import { murmur2, toPositive } from './partitioner.ts'
import type { AppendRecord, EventLog, LogRecord, Position, ReadFrom, ReadOptions, TopicPartitionOffset } from './types.ts'
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
  /** Retries of one request inside the client, with backoff (default 3). */
  retries?: number
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
  resolve: (positions: Position[]) => void
  reject: (error: unknown) => void
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
  const newProducer = () => new Producer({ ...base, idempotent: true, acks: ProduceAcks.ALL, autocreateTopics: false })
  const maxInFlight = options.maxInFlight ?? 5
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 16) throw new EventplaneError('EVP_CONFIG_INVALID', `maxInFlight must be 1 to 16, not ${maxInFlight}`)
  /** Producers that are free; one is taken for each request in flight. */
  const idle: Producer[] = Array.from({ length: maxInFlight }, newProducer)
  const all = new Set(idle)

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
    const offset = await listOffset(topic, partition, BigInt(Math.ceil(timestamp)))
    return offset >= 0 ? offset : latestOf(topic, partition)
  }

  // ---- appending ----------------------------------------------------------------------------

  let queue: PendingAppend[] = []

  function append(records: readonly AppendRecord[]): Promise<Position[]> {
    try {
      ensureOpen()
      if (!Array.isArray(records)) throw invalid('append takes an array of records')
      if (records.length === 0) return Promise.resolve([])
      records.forEach(assertRecordShape)
    } catch (error) {
      return Promise.reject(asLogError(error))
    }
    return track(enqueue(records))
  }

  async function enqueue(records: readonly AppendRecord[]): Promise<Position[]> {
    const topics = [...new Set(records.map((r) => r.topic))]
    const counts = new Map<string, number>()
    try {
      await Promise.all(topics.map(async (topic) => counts.set(topic, await partitionCount(topic))))
    } catch (error) {
      throw asLogError(error)
    }
    const now = Date.now()
    const items: Item[] = new Array(records.length)
    const sticky = new Map<string, number>()
    let bytes = 0
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!
      const partitions = counts.get(record.topic)!
      const key = record.key === undefined || record.key === null ? null : toBuffer(record.key)
      let partition: number
      if (record.partition !== undefined) {
        try {
          assertPartition(record.topic, record.partition, partitions)
        } catch (error) {
          throw asLogError(error)
        }
        partition = record.partition
      } else if (key !== null) {
        partition = toPositive(murmur2(key)) % partitions
      } else {
        let chosen = sticky.get(record.topic)
        if (chosen === undefined) {
          chosen = (nextKeyless.get(record.topic) ?? 0) % partitions
          nextKeyless.set(record.topic, (chosen + 1) % partitions)
          sticky.set(record.topic, chosen)
        }
        partition = chosen
      }
      const value = toBuffer(record.value)
      bytes += value.length + (key?.length ?? 0) + 32
      items[i] = { topic: record.topic, partition, key, value, timestamp: record.timestamp ?? now }
    }
    return new Promise<Position[]>((resolve, reject) => {
      queue.push({ items, bytes, resolve, reject })
      schedule()
    })
  }

  let flushScheduled = false

  function schedule(): void {
    if (flushScheduled || queue.length === 0 || idle.length === 0) return
    flushScheduled = true
    // One turn of the event loop, so that appends of the same moment go together.
    setImmediate(flush)
  }

  function flush(): void {
    flushScheduled = false
    while (queue.length > 0 && idle.length > 0) {
      let bytes = 0
      let taken = 0
      while (taken < queue.length && (taken === 0 || bytes + queue[taken]!.bytes <= maxRequestBytes)) bytes += queue[taken++]!.bytes
      const group = queue.slice(0, taken)
      queue = queue.slice(taken)
      const slot = { producer: idle.pop()! }
      void produce(group, slot).finally(() => {
        idle.push(slot.producer)
        schedule()
      })
    }
  }

  /** Sends a group of appends in one request; on a record-level refusal, each alone, so one bad append fails only itself. */
  async function produce(group: PendingAppend[], slot: { producer: Producer }): Promise<void> {
    const items = group.length === 1 ? group[0]!.items : group.flatMap((append) => append.items)
    const started = process.hrtime.bigint()
    let positions: Position[]
    try {
      positions = await send(items, slot)
    } catch (error) {
      if (group.length > 1 && isRecordRefusal(error)) {
        for (const append of group) await produce([append], slot)
        return
      }
      metrics?.failures.inc()
      const failure = asLogError(error)
      for (const append of group) append.reject(failure)
      return
    }
    if (metrics !== undefined) {
      metrics.duration.observe(Number(process.hrtime.bigint() - started) / 1e9)
      metrics.groupSize.observe(group.length)
      const perTopic = new Map<string, number>()
      for (const item of items) perTopic.set(item.topic, (perTopic.get(item.topic) ?? 0) + 1)
      for (const [topic, n] of perTopic) metrics.records.inc({ topic: topicLabel(topic) }, n)
    }
    let at = 0
    for (const append of group) {
      append.resolve(positions.slice(at, at + append.items.length))
      at += append.items.length
    }
  }

  /**
   * Produces items in order, in as few requests as the client can encode correctly:
   * @platformatic/kafka 1.x zigzag-encodes a record's timestamp delta (a varlong) with a 32-bit
   * sign shift, so a delta beyond ±2^31 ms (24.8 days) from the first record of its partition
   * in the request is written wrong. Records that far apart go in separate requests.
   */
  async function send(items: Item[], slot: { producer: Producer }): Promise<Position[]> {
    // Nearly always every timestamp of a request lies within the limit of the first: one request.
    let low = items[0]!.timestamp
    let high = low
    for (const item of items) {
      if (item.timestamp < low) low = item.timestamp
      else if (item.timestamp > high) high = item.timestamp
    }
    if (high - low < maxTimestampDelta) return sendRequest(items, slot)
    const positions: Position[] = []
    let start = 0
    let first = new Map<string, number>()
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      const key = `${item.topic}\0${item.partition}`
      const base = first.get(key)
      if (base === undefined) first.set(key, item.timestamp)
      else if (Math.abs(item.timestamp - base) >= maxTimestampDelta) {
        positions.push(...(await sendRequest(items.slice(start, i), slot)))
        start = i
        first = new Map([[key, item.timestamp]])
      }
    }
    positions.push(...(await sendRequest(start === 0 ? items : items.slice(start), slot)))
    return positions
  }

  async function sendRequest(items: Item[], slot: { producer: Producer }): Promise<Position[]> {
    const messages: MessageToProduce[] = new Array(items.length)
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      const message: MessageToProduce = { topic: inKafka(item.topic), partition: item.partition, value: item.value, timestamp: BigInt(item.timestamp) }
      if (item.key !== null) message.key = item.key
      messages[i] = message
    }
    const started = Date.now()
    let result
    try {
      result = await slot.producer.send({ messages })
    } catch (error) {
      // The producer's sequence numbers may no longer match the broker's: start a new one.
      const old = slot.producer
      all.delete(old)
      slot.producer = newProducer()
      all.add(slot.producer)
      old.close(true, () => undefined)
      logger?.warn({ err: error, records: items.length, ms: Date.now() - started }, 'producing to Kafka failed')
      throw error
    }
    // Each partition's records got consecutive offsets from its base offset, in request order.
    const next = new Map<string, number[]>()
    for (const { topic, partition, offset } of result.offsets ?? []) {
      const name = topic.slice(namespace.length)
      let offsets = next.get(name)
      if (offsets === undefined) next.set(name, (offsets = []))
      offsets[partition] = Number(offset)
    }
    const positions: Position[] = new Array(items.length)
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      const offsets = next.get(item.topic)
      const offset = offsets?.[item.partition]
      if (offset === undefined) throw new Error(`Kafka acknowledged no offset for ${item.topic}/${item.partition}`)
      offsets![item.partition] = offset + 1
      positions[i] = { topic: item.topic, partition: item.partition, offset }
    }
    return positions
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

  const log: KafkaEventLog = {
    kind: 'kafka',
    brokers: [...options.brokers],
    append,
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
