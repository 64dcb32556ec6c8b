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
 *   itself), so a thousand readers cost one request per broker per round, not a thousand.
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
import { createLogMetrics } from './metrics.ts'
import { murmur2, toPositive } from './partitioner.ts'
import type { AppendRecord, EventLog, LogRecord, Position, ReadFrom, ReadOptions, TopicPartitionOffset } from './types.ts'
import { assertOffset, assertPartition, assertRecordShape, assertSearchTime, assertTopic, invalid, readArguments } from './validate.ts'

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
  /** Longest a fetch waits at the broker for new records (default 100 ms). */
  fetchWaitMs?: number
  logger?: Logger
  /** Where the `eventplane_log_*` metrics go (the same as the SQLite log's). */
  registry?: Registry
}

/** Most bytes of records in one produce request unless one append alone is larger. */
const maxRequestBytes = 1 << 20
/** Most bytes a fetch asks for per partition (the broker still returns a larger first batch). */
const partitionFetchBytes = 1 << 20
const defaultBatchSize = 500

type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>
/** Topic configs for topics this log creates: events up to the intake's largest body, any timestamp. */
const createdTopicConfigs = [
  { name: 'max.message.bytes', value: String(16 << 20) },
  { name: 'message.timestamp.after.max.ms', value: '9223372036854775807' },
]
/** Largest timestamp delta within one partition of a request that the client encodes right (see send). */
const maxTimestampDelta = 2 ** 31 - 1
// Kafka's record-batch attribute bits.
const isControlBatch = 0x20
const isLogAppendTime = 0x08

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

  const metrics = options.registry === undefined ? undefined : createLogMetrics(options.registry)
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
          await admin.createTopics({ topics: [inKafka(topic)], partitions, replicas: replicationFactor, configs: createdTopicConfigs })
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
      for (const [topic, n] of perTopic) metrics.records.inc({ topic }, n)
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
      closed = true
    },
  }
  return log
}

// ---- the fetch loop ---------------------------------------------------------------------------

interface FetcherDeps {
  client: Consumer
  metadata: (topics: string[]) => Promise<{ topics: Map<string, { id: string; partitions: Array<{ leader: number }> }> }>
  forgetMetadata: () => void
  bounds: (topic: string, partition: number) => Promise<{ earliest: number; latest: number }>
  waitMs: number
  logger: Logger | undefined
}

/** One reader's place in a partition and the records fetched for it that it has not taken yet. */
class Cursor {
  readonly topic: string
  /** The topic's name in Kafka (with the namespace). */
  readonly kafkaTopic: string
  readonly partition: number
  /** Offset of the next record to fetch. */
  next: number
  readonly limit: number
  /** The fetch round that last brought this cursor records (or that it led). */
  served = 0
  queue: LogRecord[] = []
  failure: unknown
  closed = false
  #wake: (() => void) | undefined
  readonly #fetcher: Fetcher

  constructor(fetcher: Fetcher, topic: string, kafkaTopic: string, partition: number, next: number, limit: number) {
    this.#fetcher = fetcher
    this.topic = topic
    this.kafkaTopic = kafkaTopic
    this.partition = partition
    this.next = next
    this.limit = limit
  }

  get wantsMore(): boolean {
    return !this.closed && this.failure === undefined && this.queue.length < this.limit
  }

  /** The records fetched so far (waiting for some), or none when aborted or closed. */
  async take(signal: AbortSignal | undefined): Promise<LogRecord[]> {
    while (this.queue.length === 0) {
      if (this.failure !== undefined) throw this.failure
      if (this.closed || signal?.aborted === true) return []
      await new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener('abort', done)
          this.#wake = undefined
          resolve()
        }
        this.#wake = done
        signal?.addEventListener('abort', done, { once: true })
      })
    }
    const records = this.queue
    this.queue = []
    this.#fetcher.kick()
    return records
  }

  wake(): void {
    this.#wake?.()
  }

  fail(error: unknown): void {
    this.failure = error
    this.wake()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.#fetcher.remove(this)
    this.wake()
  }
}

class Fetcher {
  readonly #cursors = new Set<Cursor>()
  readonly #deps: FetcherDeps
  #running = false
  #closed = false
  #idle: (() => void) | undefined
  #failing = false
  #rounds = 0

  constructor(deps: FetcherDeps) {
    this.#deps = deps
  }

  open(topic: string, kafkaTopic: string, partition: number, next: number, limit: number): Cursor {
    const cursor = new Cursor(this, topic, kafkaTopic, partition, next, limit)
    this.#cursors.add(cursor)
    if (!this.#running) {
      this.#running = true
      void this.#loop()
    } else {
      this.kick()
    }
    return cursor
  }

  remove(cursor: Cursor): void {
    this.#cursors.delete(cursor)
    this.kick()
  }

  /** Wakes the loop when it waits for room in some reader's queue. */
  kick(): void {
    const idle = this.#idle
    this.#idle = undefined
    idle?.()
  }

  close(): void {
    this.#closed = true
    for (const cursor of [...this.#cursors]) cursor.close()
    this.kick()
  }

  async #loop(): Promise<void> {
    let backoff = 0
    try {
      while (!this.#closed && this.#cursors.size > 0) {
        // A fetch request names each partition once: per partition, the cursor served longest
        // ago leads, and every cursor of that partition at or after its offset shares the answer.
        const groups = new Map<string, Cursor[]>()
        const leads = new Map<string, Cursor>()
        for (const cursor of this.#cursors) {
          if (!cursor.wantsMore) continue
          const key = `${cursor.kafkaTopic}\0${cursor.partition}`
          const group = groups.get(key)
          if (group === undefined) groups.set(key, [cursor])
          else group.push(cursor)
          const lead = leads.get(key)
          if (lead === undefined || cursor.served < lead.served || (cursor.served === lead.served && cursor.next < lead.next)) leads.set(key, cursor)
        }
        if (leads.size === 0) {
          await new Promise<void>((resolve) => (this.#idle = resolve))
          continue
        }
        try {
          this.#rounds++
          await this.#fetchRound([...leads.values()], groups)
          if (this.#failing) this.#deps.logger?.info('reading from Kafka works again')
          this.#failing = false
          backoff = 0
        } catch (error) {
          if (this.#closed) return
          if (!this.#failing) this.#deps.logger?.warn({ err: error }, 'reading from Kafka failed; retrying with backoff')
          this.#failing = true
          this.#deps.forgetMetadata()
          backoff = Math.min(backoff === 0 ? 100 : backoff * 2, 5_000)
          await sleep(backoff)
        }
      }
    } finally {
      this.#running = false
      // A cursor opened while the loop was ending.
      if (!this.#closed && this.#cursors.size > 0) {
        this.#running = true
        void this.#loop()
      }
    }
  }

  async #fetchRound(cursors: Cursor[], groups: Map<string, Cursor[]>): Promise<void> {
    const topics = [...new Set(cursors.map((c) => c.kafkaTopic))]
    const metadata = await this.#deps.metadata(topics)
    const byLeader = new Map<number, Cursor[]>()
    for (const cursor of cursors) {
      const leader = metadata.topics.get(cursor.kafkaTopic)?.partitions[cursor.partition]?.leader
      if (leader === undefined || leader < 0) throw new Error(`no leader for ${cursor.topic}/${cursor.partition}`)
      const list = byLeader.get(leader)
      if (list === undefined) byLeader.set(leader, [cursor])
      else list.push(cursor)
    }
    await Promise.all([...byLeader].map(([node, list]) => this.#fetchFrom(node, list, metadata, groups)))
  }

  async #fetchFrom(node: number, cursors: Cursor[], metadata: Awaited<ReturnType<FetcherDeps['metadata']>>, groups: Map<string, Cursor[]>): Promise<void> {
    const byTopicId = new Map<string, Cursor[]>()
    const leadOf = new Map<string, { lead: Cursor; offset: number; group: Cursor[] }>()
    for (const cursor of cursors) {
      const id = metadata.topics.get(cursor.kafkaTopic)!.id
      const list = byTopicId.get(id)
      if (list === undefined) byTopicId.set(id, [cursor])
      else list.push(cursor)
      leadOf.set(`${id}\0${cursor.partition}`, { lead: cursor, offset: cursor.next, group: groups.get(`${cursor.kafkaTopic}\0${cursor.partition}`) ?? [cursor] })
      cursor.served = this.#rounds
    }
    let response: FetchResponse
    try {
      response = await this.#deps.client.fetch({
        node,
        maxWaitTime: this.#deps.waitMs,
        minBytes: 1,
        maxBytes: 64 << 20,
        topics: [...byTopicId].map(([topicId, list]) => ({
          topicId,
          partitions: list.map((c) => ({
            partition: c.partition,
            fetchOffset: BigInt(c.next),
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
            partitionMaxBytes: partitionFetchBytes,
          })),
        })),
      })
    } catch (error) {
      // A response with errors for some partitions still carries the others' records.
      const partial = (error as { response?: FetchResponse }).response
      if (partial === undefined || !Array.isArray(partial.responses)) throw error
      response = partial
    }
    let retry: unknown
    for (const topicResponse of response.responses) {
      for (const part of topicResponse.partitions) {
        const asked = leadOf.get(`${topicResponse.topicId}\0${part.partitionIndex}`)
        if (asked === undefined) continue
        if (part.errorCode !== 0) {
          if (!asked.lead.closed && asked.lead.next === asked.offset) retry ??= await this.#partitionError(asked.lead, part.errorCode)
          continue
        }
        // The records run from the offset asked for: every cursor at or after it takes its part.
        for (const cursor of asked.group) {
          if (!cursor.closed && cursor.next >= asked.offset && this.#deliver(cursor, part)) cursor.served = this.#rounds
        }
      }
    }
    if (retry !== undefined) throw retry
  }

  /** Queues the records at or after the cursor's offset; true if there were any. */
  #deliver(cursor: Cursor, part: FetchResponse['responses'][number]['partitions'][number]): boolean {
    const before = cursor.queue.length
    for (const batch of part.records ?? []) {
      const last = Number(batch.firstOffset) + batch.lastOffsetDelta
      if (last < cursor.next) continue
      if ((batch.attributes & isControlBatch) === 0) {
        for (const record of batch.records) {
          const offset = Number(batch.firstOffset) + record.offsetDelta
          if (offset < cursor.next) continue
          cursor.queue.push({
            topic: cursor.topic,
            partition: cursor.partition,
            offset,
            timestamp: Number((batch.attributes & isLogAppendTime) !== 0 ? batch.maxTimestamp : batch.firstTimestamp + record.timestampDelta),
            key: record.key ?? null,
            value: record.value ?? Buffer.alloc(0),
          })
        }
      }
      cursor.next = last + 1
    }
    if (cursor.queue.length === before) return false
    cursor.wake()
    return true
  }

  /** Handles one partition's error code; returns an error to back off with, or undefined. */
  async #partitionError(cursor: Cursor, code: number): Promise<unknown> {
    if (code === offsetOutOfRange) {
      // Retention removed the records (or the log was truncated): go on from what is there.
      const { earliest, latest } = await this.#deps.bounds(cursor.topic, cursor.partition)
      const to = cursor.next < earliest ? earliest : Math.min(cursor.next, latest)
      this.#deps.logger?.warn({ topic: cursor.topic, partition: cursor.partition, from: cursor.next, to }, 'offset out of range in Kafka; reading on from the nearest offset there is')
      cursor.next = to
      return undefined
    }
    this.#deps.forgetMetadata()
    return new Error(`Kafka answered error code ${code} for ${cursor.topic}/${cursor.partition}`)
  }
}

const offsetOutOfRange = 1

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
