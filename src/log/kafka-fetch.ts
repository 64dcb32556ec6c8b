/**
 * The Kafka log's fetch loop: one per log, long-polling the leaders for every open reader at
 * once (a consumer without a group, as KafkaSSE assigns partitions itself).
 *
 * Each broker gets its own Fetch request for the partitions it leads, sent again as soon as its
 * answer is in, so brokers do not wait for each other. A partition whose leader is dead, moved
 * or refuses it backs off alone, with its own schedule, while the others read on at their
 * normal pace; its leader is looked up again in the background (one dead partition once made
 * every reader of the process back off, and healthy partitions lagged by seconds).
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
  protocolErrorsCodesById,
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
  /** The fetch request that last brought this cursor records (or that it led), as a count of requests. */
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
    // A full queue kept its partition out of the fetches; below that, it is in them already.
    if (records.length >= this.limit) this.#fetcher.kick()
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

/** A partition being read: whether a request for it is out, and its own backoff after failures. */
interface PartitionState {
  readonly topic: string
  readonly partition: number
  /** A request for it is out (it goes in no other), or its offset is being looked up again. */
  busy: boolean
  repositioning: boolean
  /** 0 while its fetches work; else how long it waited after its last failure. */
  backoff: number
  /** When it may be fetched again (Date.now() time). */
  retryAt: number
  /** Why it failed last, to be logged once per outage and not on each retry. */
  failure: string | undefined
  /** When its current run of failures began (Date.now() time), while it fails. */
  failingSince?: number
}

/** One partition of a fetch request: the cursor that led it, the offset asked for and the cursors that share the answer. */
interface Asked {
  lead: Cursor
  offset: number
  group: Cursor[]
  state: PartitionState
}

/** The leaders the fetch loop goes by, merged from every Metadata answer, partial ones too. */
interface Leaders {
  brokers: Map<number, Broker>
  topics: Map<string, { id: string; leaders: number[] }>
}

/** A partition's backoff starts here after its first failure, doubles on each next one and is capped (so is that of metadata lookups). */
const firstBackoffMs = 100
const maxBackoffMs = 5_000

/**
 * Partition errors after which the leaders are looked up again: the broker asked is no longer
 * (or not yet) the partition's leader, or it does not know the topic under that id.
 */
const staleLeaderCodes = new Set([
  3, // UNKNOWN_TOPIC_OR_PARTITION
  5, // LEADER_NOT_AVAILABLE
  6, // NOT_LEADER_OR_FOLLOWER
  9, // REPLICA_NOT_AVAILABLE
  56, // KAFKA_STORAGE_ERROR
  74, // FENCED_LEADER_EPOCH
  75, // UNKNOWN_LEADER_EPOCH
  78, // OFFSET_NOT_AVAILABLE
  100, // UNKNOWN_TOPIC_ID
  103, // INCONSISTENT_TOPIC_ID
])
const unsupportedVersion = 35

/**
 * The fetch loop. Each broker has at most one Fetch request out, for the partitions it leads,
 * and each is sent again as soon as its answer is in: a broker that is slow, dead or
 * unreachable holds up only its own partitions, never a round of the others. A partition whose
 * fetch fails (its leader moved or cannot be reached, an error code) backs off on its own
 * schedule (100 ms doubling to 5 s, reset by a fetch that works) while the others read on;
 * the leaders are then looked up again in the background, the fetches going on meanwhile with
 * the leaders known so far.
 */
export class Fetcher {
  readonly #cursors = new Set<Cursor>()
  readonly #deps: FetcherDeps
  #running = false
  #closed = false
  /** Resolves the loop's wait; #signalled says something changed since the loop last looked. */
  #idle: (() => void) | undefined
  #signalled = false
  #rounds = 0
  #api: Promise<FetchApi> | undefined
  readonly #partitions = new Map<string, PartitionState>()
  /** Brokers with a Fetch request out, and those whose last request failed (logged once). */
  readonly #busyBrokers = new Set<number>()
  readonly #failingBrokers = new Set<number>()
  readonly #leaders: Leaders = { brokers: new Map(), topics: new Map() }
  /** Topics (in Kafka) whose leaders are to be looked up, and whether the client's cached ones must go first. */
  readonly #stale = new Set<string>()
  #staleCache = false
  #lookingUp = false
  #lookupBackoff = 0
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

  /** Wakes the loop to look again: a reader came, went or has room in its queue, an answer or the leaders came in. */
  kick(): void {
    this.#signalled = true
    const idle = this.#idle
    this.#idle = undefined
    idle?.()
  }

  /**
   * Why reading does not work, when every partition being read has failed for `graceMs` or
   * more (one partition in trouble leaves this process able to serve the others); undefined
   * while any works.
   */
  problem(graceMs: number, now = Date.now()): string | undefined {
    let failing: PartitionState | undefined
    for (const state of this.#partitions.values()) {
      if (state.failingSince === undefined || now - state.failingSince < graceMs) return undefined
      failing = state
    }
    return failing === undefined ? undefined : `reading every partition from Kafka fails (${failing.topic}/${failing.partition}: ${failing.failure})`
  }

  close(): void {
    this.#closed = true
    for (const cursor of [...this.#cursors]) cursor.close()
    this.kick()
  }

  async #loop(): Promise<void> {
    try {
      while (!this.#closed && this.#cursors.size > 0) {
        this.#signalled = false
        const wait = this.#schedule()
        if (!this.#signalled) {
          await new Promise<void>((resolve) => {
            const timer = wait === undefined ? undefined : setTimeout(() => this.kick(), Math.max(wait, 1))
            this.#idle = () => {
              clearTimeout(timer)
              resolve()
            }
          })
        }
        // Whatever else woke in the same turn (more answers, more readers) is seen in one look.
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
    } finally {
      this.#idle = undefined
      this.#running = false
      // A cursor opened while the loop was ending.
      if (!this.#closed && this.#cursors.size > 0) {
        this.#running = true
        void this.#loop()
      }
    }
  }

  /**
   * Sends a Fetch request to each broker that has none out and leads partitions that readers
   * want records of and that are not backing off. Returns how long until a partition's backoff
   * ends (undefined: nothing to wait for but a kick).
   */
  #schedule(): number | undefined {
    // A fetch request names each partition once: per partition, the cursor served longest ago
    // leads, and every cursor of that partition at or after its offset shares the answer.
    const groups = new Map<string, Cursor[]>()
    const leads = new Map<string, Cursor>()
    const open = new Set<string>()
    for (const cursor of this.#cursors) {
      const key = partitionKey(cursor.kafkaTopic, cursor.partition)
      open.add(key)
      if (!cursor.wantsMore) continue
      const group = groups.get(key)
      if (group === undefined) groups.set(key, [cursor])
      else group.push(cursor)
      const lead = leads.get(key)
      if (lead === undefined || cursor.served < lead.served || (cursor.served === lead.served && cursor.next < lead.next)) leads.set(key, cursor)
    }
    for (const [key, state] of this.#partitions) if (!open.has(key) && !state.busy && !state.repositioning) this.#partitions.delete(key)
    const now = Date.now()
    let wait: number | undefined
    const byLeader = new Map<number, Cursor[]>()
    for (const [key, lead] of leads) {
      let state = this.#partitions.get(key)
      if (state === undefined) this.#partitions.set(key, (state = { topic: lead.topic, partition: lead.partition, busy: false, repositioning: false, backoff: 0, retryAt: 0, failure: undefined }))
      if (state.busy || state.repositioning) continue
      if (state.retryAt > now) {
        wait = Math.min(wait ?? Infinity, state.retryAt - now)
        continue
      }
      const topic = this.#leaders.topics.get(lead.kafkaTopic)
      if (topic === undefined) {
        // Not looked up yet (or the lookup failed, and is retried with its own backoff).
        this.#lookUp([lead.kafkaTopic], false)
        continue
      }
      const leader = topic.leaders[lead.partition] ?? -1
      if (leader < 0 || !this.#leaders.brokers.has(leader)) {
        this.#failed(state, leader < 0 ? 'the partition has no leader' : `no address for its leader, broker ${leader}`, now)
        this.#lookUp([lead.kafkaTopic], true)
        wait = Math.min(wait ?? Infinity, state.retryAt - now)
        continue
      }
      if (this.#busyBrokers.has(leader)) continue
      const list = byLeader.get(leader)
      if (list === undefined) byLeader.set(leader, [lead])
      else list.push(lead)
    }
    for (const [node, list] of byLeader) {
      const asked = list.map((lead): Asked => {
        const state = this.#partitions.get(partitionKey(lead.kafkaTopic, lead.partition))!
        state.busy = true
        return { lead, offset: lead.next, group: groups.get(partitionKey(lead.kafkaTopic, lead.partition)) ?? [lead], state }
      })
      this.#busyBrokers.add(node)
      void this.#fetchFrom(node, asked)
        .catch((error: unknown) => this.#brokerFailed(node, asked, error))
        .finally(() => {
          this.#busyBrokers.delete(node)
          for (const { state } of asked) state.busy = false
          this.kick()
        })
    }
    return wait
  }

  /** One Fetch request to one broker, and its answer handed to the cursors partition by partition. */
  async #fetchFrom(node: number, asked: Asked[]): Promise<void> {
    const round = ++this.#rounds
    const byTopicId = new Map<string, Asked[]>()
    const byPartition = new Map<string, Asked>()
    for (const entry of asked) {
      const id = this.#leaders.topics.get(entry.lead.kafkaTopic)!.id
      const list = byTopicId.get(id)
      if (list === undefined) byTopicId.set(id, [entry])
      else list.push(entry)
      byPartition.set(partitionKey(id, entry.lead.partition), entry)
      entry.lead.served = round
    }
    let response: RawFetchResponse
    try {
      const broker = this.#leaders.brokers.get(node)!
      const [api, connection] = await Promise.all([this.#fetchApi(), this.#deps.client.connections.get(broker)])
      response = await api.async(
        connection,
        this.#deps.waitMs,
        1,
        64 << 20,
        FetchIsolationLevels.READ_COMMITTED,
        0,
        0,
        [...byTopicId].map(([topicId, list]) => ({
          topicId,
          partitions: list.map(({ lead, offset }) => ({
            partition: lead.partition,
            fetchOffset: BigInt(offset),
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
            partitionMaxBytes: partitionFetchBytes,
          })),
        })),
        [],
        '',
      )
      if (response.errorCode !== 0) {
        // The broker may have been replaced by one of another version since Fetch was chosen.
        if (response.errorCode === unsupportedVersion) this.#api = undefined
        throw new Error(`Kafka answered Fetch with error code ${response.errorCode} (${errorName(response.errorCode)})`)
      }
    } catch (error) {
      this.#brokerFailed(node, asked, error)
      return
    }
    if (this.#failingBrokers.delete(node)) this.#deps.logger?.info({ broker: node }, 'fetching from the Kafka broker works again')
    const now = Date.now()
    const failed: string[] = []
    const recovered: string[] = []
    const stale = new Set<string>()
    for (const topicResponse of response.responses) {
      for (const part of topicResponse.partitions) {
        const entry = byPartition.get(partitionKey(topicResponse.topicId, part.partitionIndex))
        if (entry === undefined) continue
        const { lead, offset, group, state } = entry
        if (part.errorCode === offsetOutOfRange) {
          if (!lead.closed && lead.next === offset) this.#reposition(lead, state)
          continue
        }
        if (part.errorCode !== 0) {
          const code = part.errorCode
          if (this.#failed(state, `Kafka answered error code ${code} (${errorName(code)})`, now)) failed.push(`${lead.topic}/${lead.partition}: ${code} (${errorName(code)})`)
          if (staleLeaderCodes.has(code)) stale.add(lead.kafkaTopic)
          continue
        }
        if (state.failure !== undefined) recovered.push(`${lead.topic}/${lead.partition}`)
        state.backoff = 0
        state.retryAt = 0
        state.failure = undefined
        state.failingSince = undefined
        if (part.records === undefined) continue
        const batches = this.#decode(lead, part.records)
        // The records run from the offset asked for: every cursor at or after it takes its part.
        for (const cursor of group) {
          if (!cursor.closed && cursor.next >= offset && this.#deliver(cursor, batches)) cursor.served = round
        }
      }
    }
    if (stale.size > 0) this.#lookUp([...stale], true)
    if (failed.length > 0) this.#deps.logger?.warn({ broker: node, partitions: failed }, 'Kafka refused to fetch partitions; they back off and are retried, the others read on')
    if (recovered.length > 0) this.#deps.logger?.info({ broker: node, partitions: recovered }, 'reading partitions from Kafka works again')
  }

  /**
   * The broker could not be reached or did not answer: its partitions back off (each on its
   * own schedule), and whether their leader moved is looked up.
   */
  #brokerFailed(node: number, asked: Asked[], error: unknown): void {
    if (this.#closed) return
    const now = Date.now()
    for (const { state } of asked) this.#failed(state, 'its leader cannot be reached', now, false)
    this.#lookUp([...new Set(asked.map((a) => a.lead.kafkaTopic))], true)
    if (!this.#failingBrokers.has(node)) {
      this.#failingBrokers.add(node)
      this.#deps.logger?.warn(
        { err: error, broker: node, partitions: asked.map(({ lead }) => `${lead.topic}/${lead.partition}`) },
        'fetching from a Kafka broker failed; its partitions back off and are retried, the others read on',
      )
    }
  }

  /**
   * Backs a partition off after a failure; true the first time it fails after working (when
   * it is logged; `log` false when the caller logs it).
   */
  #failed(state: PartitionState, reason: string, now: number, log = true): boolean {
    state.backoff = Math.min(state.backoff === 0 ? firstBackoffMs : state.backoff * 2, maxBackoffMs)
    state.retryAt = now + state.backoff
    const first = state.failure === undefined
    if (first) state.failingSince = now
    state.failure = reason
    if (first && log) this.#deps.logger?.warn({ topic: state.topic, partition: state.partition, reason }, 'reading a partition from Kafka failed; it backs off and is retried, the others read on')
    return first
  }

  /** After offset out of range: retention removed the records (or the log was truncated), so go on from what is there. */
  #reposition(cursor: Cursor, state: PartitionState): void {
    state.repositioning = true
    const from = cursor.next
    void (async () => {
      try {
        const { earliest, latest } = await this.#deps.bounds(cursor.topic, cursor.partition)
        if (cursor.next !== from) return
        const to = from < earliest ? earliest : Math.min(from, latest)
        this.#deps.logger?.warn({ topic: cursor.topic, partition: cursor.partition, from, to }, 'offset out of range in Kafka; reading on from the nearest offset there is')
        cursor.next = to
      } catch (error) {
        if (!this.#closed) this.#failed(state, `looking up its offsets failed: ${error instanceof Error ? error.message : String(error)}`, Date.now())
      } finally {
        state.repositioning = false
        this.kick()
      }
    })()
  }

  /**
   * Looks the leaders of these topics up again, in the background: one lookup at a time, with
   * its own backoff when it fails, while fetches go on with the leaders known so far (a lookup
   * that hangs on an unreachable broker holds up no partition whose leader answers). `fresh`:
   * the client's cached metadata is forgotten first, as a fetch said it is out of date.
   */
  #lookUp(topics: string[], fresh: boolean): void {
    for (const topic of topics) this.#stale.add(topic)
    if (fresh) this.#staleCache = true
    if (this.#lookingUp || this.#closed) return
    this.#lookingUp = true
    void (async () => {
      try {
        while (this.#stale.size > 0 && !this.#closed) {
          const asked = [...this.#stale]
          const fresh = this.#staleCache
          this.#stale.clear()
          this.#staleCache = false
          let found: FetchMetadata | undefined
          let failure: unknown
          try {
            if (fresh) this.#deps.forgetMetadata()
            found = await this.#deps.metadata(asked)
          } catch (error) {
            failure = error
            found = partialMetadata(error)
          }
          if (this.#closed) return
          if (found !== undefined) this.#learn(found, asked)
          this.kick()
          // A partial answer (some partition has no leader) is an answer: the partitions without
          // one back off on their own, and ask again when they retry. One without a topic asked
          // for is not (or a reader of it would ask again at once, and again).
          if (found !== undefined && asked.every((topic) => found.topics.get(topic) !== undefined)) {
            if (this.#lookupBackoff !== 0) this.#deps.logger?.info('looking up partition leaders in Kafka works again')
            this.#lookupBackoff = 0
          } else {
            if (this.#lookupBackoff === 0) this.#deps.logger?.warn({ err: failure, topics: asked }, 'looking up partition leaders in Kafka failed; retrying with backoff')
            this.#lookupBackoff = Math.min(this.#lookupBackoff === 0 ? firstBackoffMs : this.#lookupBackoff * 2, maxBackoffMs)
            await sleep(this.#lookupBackoff)
          }
        }
      } finally {
        this.#lookingUp = false
        if (this.#stale.size > 0 && !this.#closed) this.#lookUp([], false)
      }
    })()
  }

  /** Takes in the leaders and broker addresses of a Metadata answer (brokers missing from it keep their last address). */
  #learn(metadata: FetchMetadata, asked: string[]): void {
    for (const [node, broker] of metadata.brokers) this.#leaders.brokers.set(node, broker)
    for (const name of asked) {
      const topic = metadata.topics.get(name)
      if (topic === undefined || typeof topic.id !== 'string') continue
      const before = this.#leaders.topics.get(name)?.leaders ?? []
      const leaders = topic.partitions.map((p) => (typeof p?.leader === 'number' ? p.leader : -1))
      this.#leaders.topics.set(name, { id: topic.id, leaders })
      // A partition backing off because its leader was gone or moved is tried at its new one
      // at once (its backoff stays, to grow if this one fails too).
      leaders.forEach((leader, partition) => {
        const state = this.#partitions.get(partitionKey(name, partition))
        if (state !== undefined && leader >= 0 && leader !== before[partition]) state.retryAt = 0
      })
    }
    const read = new Set([...this.#cursors].map((c) => c.kafkaTopic))
    for (const name of this.#leaders.topics.keys()) if (!read.has(name)) this.#leaders.topics.delete(name)
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

  /** Fetch in the newest version both sides know (looked up again after a broker answered UNSUPPORTED_VERSION). */
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

// ---- leaders ------------------------------------------------------------------------------------

const partitionKey = (topic: string, partition: number) => `${topic}\0${partition}`

const errorName = (code: number) => protocolErrorsCodesById[code] ?? 'unknown'

/**
 * What a Metadata answer the client refused still says. The client fails a whole answer when
 * one partition in it has an error (a partition whose only replica is down has
 * LEADER_NOT_AVAILABLE, with no leader), and keeps the answer on its error: without this, one
 * dead partition would hide the leaders of every other partition of its topic. Checked field
 * by field, as it comes from the network through the client's internals.
 */
function partialMetadata(error: unknown): FetchMetadata | undefined {
  // The client's errors nest (a MultipleErrors of each attempt's errors): the last attempt's first.
  const pending: unknown[] = [error]
  while (pending.length > 0) {
    const found = pending.pop()
    if (typeof found !== 'object' || found === null) continue
    const metadata = fromRawMetadata((found as { response?: unknown }).response)
    if (metadata !== undefined) return metadata
    const inner = (found as { errors?: unknown }).errors
    if (Array.isArray(inner)) pending.push(...(inner as unknown[]))
  }
  return undefined
}

function fromRawMetadata(response: unknown): FetchMetadata | undefined {
  if (typeof response !== 'object' || response === null) return undefined
  const { brokers, topics } = response as { brokers?: unknown; topics?: unknown }
  if (!Array.isArray(brokers) || !Array.isArray(topics)) return undefined
  const metadata: FetchMetadata = { brokers: new Map(), topics: new Map() }
  for (const broker of brokers as unknown[]) {
    const { nodeId, host, port } = (broker ?? {}) as { nodeId?: unknown; host?: unknown; port?: unknown }
    if (typeof nodeId === 'number' && typeof host === 'string' && typeof port === 'number') metadata.brokers.set(nodeId, { host, port })
  }
  for (const topic of topics as unknown[]) {
    const { errorCode, name, topicId, partitions } = (topic ?? {}) as { errorCode?: unknown; name?: unknown; topicId?: unknown; partitions?: unknown }
    if (errorCode !== 0 || typeof name !== 'string' || typeof topicId !== 'string' || !Array.isArray(partitions)) continue
    const leaders: Array<{ leader: number }> = []
    for (const partition of partitions as unknown[]) {
      const { partitionIndex, leaderId } = (partition ?? {}) as { partitionIndex?: unknown; leaderId?: unknown }
      if (typeof partitionIndex === 'number' && Number.isInteger(partitionIndex) && partitionIndex >= 0 && partitionIndex < 1 << 20) {
        leaders[partitionIndex] = { leader: typeof leaderId === 'number' ? leaderId : -1 }
      }
    }
    metadata.topics.set(name, { id: topicId, partitions: leaders })
  }
  return metadata
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

/** A wait that does not keep the process alive (a lookup retried after close is not waited for). */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())
