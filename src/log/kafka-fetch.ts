/**
 * The Kafka log's fetch loop: one per log, long-polling the leaders for every open reader at
 * once (a consumer without a group, as KafkaSSE assigns partitions itself).
 *
 * It sends Fetch requests itself, on the client's connections, and decodes their record batches
 * itself, one partition and one batch at a time. @platformatic/kafka decodes a whole Fetch
 * response in one go, so a single batch it cannot decompress (Java's framed snappy, zstd before
 * Node 22.15, a corrupt batch) failed the response of every partition on that broker, and the
 * loop retried it forever. Here such a batch stops only the readers that reach it, with
 * EVP_LOG_RECORD_UNDECODABLE; the records before it and every other partition of the same
 * response are delivered as usual, in the same round, with no second request.
 */
import {
  createAPI,
  fetchV13,
  fetchV14,
  fetchV15,
  fetchV16,
  fetchV17,
  FetchIsolationLevels,
  readRecord,
  Reader,
  type API,
  type Broker,
  type Consumer,
} from '@platformatic/kafka'
import type { Logger } from 'pino'
import { EventplaneError } from '../core/errors.ts'
import { codecName, type Decompress } from './kafka-codecs.ts'
import type { LogRecord } from './types.ts'

export interface FetcherDeps {
  /** The client whose connections (with the log's TLS and SASL) carry the Fetch requests. */
  client: Consumer
  metadata: (topics: string[]) => Promise<FetchMetadata>
  forgetMetadata: () => void
  bounds: (topic: string, partition: number) => Promise<{ earliest: number; latest: number }>
  waitMs: number
  decompress: Decompress
  /** Called once for each batch found undecodable (per topic, partition and offset). */
  undecodable: ((topic: string) => void) | undefined
  logger: Logger | undefined
}

export interface FetchMetadata {
  brokers: Map<number, Broker>
  topics: Map<string, { id: string; partitions: Array<{ leader: number }> }>
}

/** Most bytes a fetch asks for per partition (the broker still returns a larger first batch). */
const partitionFetchBytes = 1 << 20
const offsetOutOfRange = 1
// Kafka's record-batch attribute bits.
const isControlBatch = 0x20
const isLogAppendTime = 0x08

/** One reader's place in a partition and the records fetched for it that it has not taken yet. */
export class Cursor {
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

  /** The records fetched so far (waiting for some), or none when aborted or closed; throws the cursor's failure once they are taken. */
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

/** A record batch of one partition's answer: its records, or why they cannot be read. */
type Batch =
  | { first: number; last: number; kind: 'records'; attributes: number; firstTimestamp: bigint; maxTimestamp: bigint; records: Array<ReturnType<typeof readRecord>> }
  | { first: number; last: number; kind: 'control' }
  | { first: number; last: number; kind: 'undecodable'; error: EventplaneError }

export class Fetcher {
  readonly #cursors = new Set<Cursor>()
  readonly #deps: FetcherDeps
  #running = false
  #closed = false
  #idle: (() => void) | undefined
  #failing = false
  #rounds = 0
  #api: Promise<FetchApi> | undefined
  /** Undecodable batches already logged and counted, as topic, partition and first offset. */
  readonly #reported = new Set<string>()

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
          this.#api = undefined
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

  async #fetchFrom(node: number, cursors: Cursor[], metadata: FetchMetadata, groups: Map<string, Cursor[]>): Promise<void> {
    const broker = metadata.brokers.get(node)
    if (broker === undefined) throw new Error(`no address for broker ${node}`)
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
    const [api, connection] = await Promise.all([this.#fetchApi(), this.#deps.client.connections.get(broker)])
    const response = await api.async(
      connection,
      this.#deps.waitMs,
      1,
      64 << 20,
      FetchIsolationLevels.READ_COMMITTED,
      0,
      0,
      [...byTopicId].map(([topicId, list]) => ({
        topicId,
        partitions: list.map((c) => ({
          partition: c.partition,
          fetchOffset: BigInt(c.next),
          currentLeaderEpoch: -1,
          lastFetchedEpoch: -1,
          partitionMaxBytes: partitionFetchBytes,
        })),
      })),
      [],
      '',
    )
    if (response.errorCode !== 0) throw new Error(`Kafka answered Fetch with error code ${response.errorCode}`)
    let retry: unknown
    for (const topicResponse of response.responses) {
      for (const part of topicResponse.partitions) {
        const asked = leadOf.get(`${topicResponse.topicId}\0${part.partitionIndex}`)
        if (asked === undefined) continue
        if (part.errorCode !== 0) {
          if (!asked.lead.closed && asked.lead.next === asked.offset) retry ??= await this.#partitionError(asked.lead, part.errorCode)
          continue
        }
        if (part.records === undefined) continue
        const batches = this.#decode(asked.lead, part.records)
        // The records run from the offset asked for: every cursor at or after it takes its part.
        for (const cursor of asked.group) {
          if (!cursor.closed && cursor.next >= asked.offset && this.#deliver(cursor, batches)) cursor.served = this.#rounds
        }
      }
    }
    if (retry !== undefined) throw retry
  }

  /**
   * The record batches of one partition's answer, each decoded on its own, so that one that
   * cannot be (a codec this process cannot read, a corrupt batch) fails only the readers that
   * reach it. A batch cut short by the size limit ends the list, to be fetched again in full;
   * so does a batch too short for its header, after which nothing can be found.
   */
  #decode(lead: Cursor, data: Buffer): Batch[] {
    const batches: Batch[] = []
    let at = 0
    while (at + batchHeadBytes <= data.length) {
      const length = data.readInt32BE(at + 8)
      const end = at + batchHeadBytes + length
      if (end > data.length) break
      const first = Number(data.readBigInt64BE(at))
      if (length < recordsAt - batchHeadBytes) {
        batches.push({ first, last: first, kind: 'undecodable', error: this.#undecodable(lead, first, first, 0, new Error(`a batch of ${length} bytes is shorter than its header`)) })
        break
      }
      const last = first + data.readInt32BE(at + 23)
      const attributes = data.readInt16BE(at + 21)
      try {
        const magic = data.readInt8(at + 16)
        if (magic !== 2) throw new Error(`message format v${magic} (only v2 is read)`)
        if ((attributes & isControlBatch) !== 0) {
          batches.push({ first, last, kind: 'control' })
        } else {
          const count = data.readInt32BE(at + 57)
          const bits = attributes & 0x07
          const body = bits === 0 ? data.subarray(at + recordsAt, end) : this.#deps.decompress(bits, data.subarray(at + recordsAt, end))
          const reader = Reader.from(body)
          const records: Array<ReturnType<typeof readRecord>> = []
          for (let i = 0; i < count; i++) records.push(readRecord(reader))
          batches.push({ first, last, kind: 'records', attributes, firstTimestamp: data.readBigInt64BE(at + 27), maxTimestamp: data.readBigInt64BE(at + 35), records })
        }
      } catch (error) {
        // Its length is outside what failed, so the batches after it are still found (a reader
        // that started past it reads on).
        batches.push({ first, last, kind: 'undecodable', error: this.#undecodable(lead, first, last, attributes, error) })
      }
      at = end
    }
    return batches
  }

  /** The error for a batch that cannot be decoded, logged and counted once per batch. */
  #undecodable(cursor: Cursor, first: number, last: number, attributes: number, cause: unknown): EventplaneError {
    const codec = codecName(attributes)
    const { topic, partition } = cursor
    const reason = cause instanceof Error ? cause.message : String(cause)
    const key = `${cursor.kafkaTopic}\0${partition}\0${first}`
    if (!this.#reported.has(key)) {
      // Bounded: after this many distinct batches, one may be logged and counted a second time.
      if (this.#reported.size >= 10_000) this.#reported.clear()
      this.#reported.add(key)
      this.#deps.logger?.error({ topic, partition, offset: first, lastOffset: last, codec, err: cause }, 'a record batch in Kafka cannot be decoded; the readers of its partition stop there')
      this.#deps.undecodable?.(topic)
    }
    return new EventplaneError(
      'EVP_LOG_RECORD_UNDECODABLE',
      `the records at offsets ${first} to ${last} of ${topic}/${partition} cannot be decoded (compression: ${codec}): ${reason}`,
      { details: { topic, partition, offset: first, lastOffset: last }, cause },
    )
  }

  /** Queues the records at or after the cursor's offset, up to a batch that cannot be decoded (which fails the cursor); true if it got any. */
  #deliver(cursor: Cursor, batches: Batch[]): boolean {
    const before = cursor.queue.length
    for (const batch of batches) {
      if (batch.last < cursor.next) continue
      if (batch.kind === 'undecodable') {
        cursor.fail(batch.error)
        return true
      }
      if (batch.kind === 'records') {
        for (const record of batch.records) {
          const offset = batch.first + record.offsetDelta
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
      cursor.next = batch.last + 1
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

  /** Fetch in the newest version both sides know (looked up again after a failed round). */
  #fetchApi(): Promise<FetchApi> {
    this.#api ??= this.#deps.client.listApis().then((apis) => {
      const fetch = apis.find((api) => api.apiKey === fetchApiKey)
      const version = fetch === undefined ? undefined : [...fetchVersions].reverse().find((v) => v.version >= fetch.minVersion && v.version <= fetch.maxVersion)
      if (version === undefined) throw new Error(`the broker takes Fetch ${fetch?.minVersion ?? '?'} to ${fetch?.maxVersion ?? '?'}; this log needs one of 13 to 17 (Kafka 3.1 or newer)`)
      return createAPI<FetchRequest, RawFetchResponse>(fetchApiKey, version.version, version.createRequest, parseRawFetch)
    })
    const api = this.#api
    api.catch(() => {
      if (this.#api === api) this.#api = undefined
    })
    return api
  }
}

// ---- Fetch on the wire ------------------------------------------------------------------------

const fetchApiKey = 1
/** Fetch versions with topic ids (13+) that the client can write; their responses are laid out alike. */
const fetchVersions = [
  { version: 13, createRequest: fetchV13.createRequest },
  { version: 14, createRequest: fetchV14.createRequest },
  { version: 15, createRequest: fetchV15.createRequest },
  { version: 16, createRequest: fetchV16.createRequest },
  { version: 17, createRequest: fetchV17.createRequest },
] as const
type FetchRequest = fetchV17.FetchRequest
type FetchApi = API<FetchRequest, RawFetchResponse>

// Record batch v2: baseOffset int64, batchLength int32 (of what follows it), partitionLeaderEpoch
// int32, magic int8, crc uint32, attributes int16, lastOffsetDelta int32, baseTimestamp int64,
// maxTimestamp int64, producerId int64, producerEpoch int16, baseSequence int32, records count
// int32, then the records (compressed as a whole when the attributes name a codec).
const batchHeadBytes = 12
const recordsAt = 61

interface RawFetchResponse {
  errorCode: number
  responses: Array<{
    topicId: string
    partitions: Array<{ partitionIndex: number; errorCode: number; records: Buffer | undefined }>
  }>
}

/**
 * A Fetch response (v13 to v17) with each partition's records left as bytes: the same reading
 * as the client's own parser, which decodes every batch of the response while parsing and so
 * fails the whole response on one batch. Partition errors are returned, not thrown.
 */
function parseRawFetch(_correlationId: number, _apiKey: number, _apiVersion: number, reader: Reader): RawFetchResponse {
  reader.readInt32() // throttle_time_ms
  const errorCode = reader.readInt16()
  reader.readInt32() // session_id
  const responses = reader.readArray((r) => ({
    topicId: r.readUUID(),
    partitions: r.readArray((r) => {
      const partitionIndex = r.readInt32()
      const errorCode = r.readInt16()
      r.readInt64() // high_watermark
      r.readInt64() // last_stable_offset
      r.readInt64() // log_start_offset
      r.readArray((r) => [r.readInt64(), r.readInt64()]) // aborted_transactions
      r.readInt32() // preferred_read_replica
      // COMPACT_RECORDS: the length plus one, 0 for null.
      const size = r.readUnsignedVarInt() - 1
      let records: Buffer | undefined
      if (size > 0) {
        records = r.buffer.slice(r.position, r.position + size)
        r.skip(size)
      }
      return { partitionIndex, errorCode, records }
    }),
  }))
  return { errorCode, responses }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
