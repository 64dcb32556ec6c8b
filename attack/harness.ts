/**
 * The hostile-input suite's harness: a live server process of its own (config, stream config
 * and SQLite log in a temp folder), a prober that times `GET /healthz` every 10 ms from its own
 * thread and address, the server's RSS before, during and after each attack, its output for
 * crashes, and the event log read back afterwards with the server's own reader.
 *
 * Every attack runs through `Suite.run`, which measures it against the same targets:
 * the process still answers; no 5xx but the documented retryable ones; worst /healthz under
 * 100 ms; RSS back within 20 % (or 15 MiB) of its value before; every good event that was
 * acknowledged found in the log exactly once (and no refused one found at all); no answer
 * naming a path of the server's machine. Attacks add their own expectations with `expect`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setMaxListeners } from 'node:events'
import { Worker } from 'node:worker_threads'
import { stringify } from 'yaml'
import { repoRoot, serverEnv, sleep, stop } from '../bench/lib.ts'
import { openSqliteLog, type SqliteEventLog } from '../src/log/index.ts'
import type { Expectation } from './corpus.ts'
import { closeQuietly, header, isObject, openStream, request, type Answer, type Closeable, type RequestOptions, type StreamHandle } from './client.ts'

export { repoRoot, sleep }

// ---- what the suite configures -----------------------------------------------------------------

/** The limits the suite's server runs with (written into its config, read by the attacks). */
export interface Limits {
  maxBodyBytes: number
  maxEventsPerRequest: number
  maxRefusalsListed: number
  maxRegexStreams: number
  /** server.max_connections_per_ip (lowered from 256 to keep the slow-client attacks short). */
  maxConnectionsPerIp: number
  headersTimeoutMs: number
  requestTimeoutMs: number
  /** streams.max_connections_per_ip */
  streamsPerIp: number
  /** streams.max_buffered_bytes (lowered from 4 MiB so that slow readers fill it quickly). */
  maxBufferedBytes: number
  slowClientGraceMs: number
  heartbeatIntervalS: number
  topicPrefix: string
  errorStream: string
}

export function limitsFor(quick: boolean): Limits {
  return {
    maxBodyBytes: 4 * 1024 * 1024,
    maxEventsPerRequest: 10_000,
    maxRefusalsListed: 100,
    maxRegexStreams: 50,
    maxConnectionsPerIp: 64,
    headersTimeoutMs: quick ? 1000 : 10_000,
    requestTimeoutMs: quick ? 2000 : 30_000,
    streamsPerIp: 10,
    maxBufferedBytes: 256 * 1024,
    slowClientGraceMs: 2000,
    heartbeatIntervalS: 1,
    topicPrefix: 'datacenter1.',
    errorStream: 'eventplane.error.validation',
  }
}

/** Streams of the suite's stream config. */
export const streams = {
  test: 'test.event',
  /** Keyed by meta.domain (message_key_fields). */
  keyed: 'test.keyed',
  /** What slow SSE readers follow, so that test.event's history stays small. */
  flood: 'test.flood',
} as const

function streamConfig() {
  return {
    defaults: { topic_prefixes: ['datacenter1.'] },
    streams: {
      [streams.test]: { schema_title: 'eventplane/test/event' },
      [streams.keyed]: { schema_title: 'eventplane/test/event', message_key_fields: { domain: 'meta.domain' } },
      [streams.flood]: { schema_title: 'eventplane/test/event' },
      // Where the legacy beacon's Test capsules go (beacon-flood).
      eventlogging_EventplaneTest: { schema_title: 'analytics/legacy/eventplanetest', topic_prefixes: null },
      'eventplane.error.validation': { schema_title: 'eventplane/error' },
      '/^test\\.event\\..+$/': { schema_title: 'eventplane/test/event' },
    },
  }
}

function serverConfig(dir: string, limits: Limits): Record<string, unknown> {
  return {
    server: {
      host: '127.0.0.1',
      port: 0,
      trust_proxy: false,
      max_connections_per_ip: limits.maxConnectionsPerIp,
      headers_timeout_ms: limits.headersTimeoutMs,
      request_timeout_ms: limits.requestTimeoutMs,
    },
    log: { level: 'warn' },
    data_dir: join(dir, 'data'),
    schemas: { repositories: [{ name: 'eventplane', path: join(repoRoot, 'defaults', 'schemas') }] },
    stream_config: { source: join(dir, 'streams.yaml'), watch: false },
    intake: {
      topic_prefix: limits.topicPrefix,
      error_stream: limits.errorStream,
      max_body_bytes: limits.maxBodyBytes,
      max_events_per_request: limits.maxEventsPerRequest,
      max_refusals_listed: limits.maxRefusalsListed,
      max_regex_streams: limits.maxRegexStreams,
    },
    streams: {
      max_connections_per_ip: limits.streamsPerIp,
      max_buffered_bytes: limits.maxBufferedBytes,
      slow_client_grace_ms: limits.slowClientGraceMs,
      heartbeat_interval_s: limits.heartbeatIntervalS,
    },
    event_log: { sync: 'normal' },
  }
}

// ---- the server process ------------------------------------------------------------------------

/** Where attacks connect from; the prober and the harness's own requests use other addresses, so per-IP limits never count them. */
export const attackerAddress = '127.0.0.1'
const proberAddress = '127.0.0.2'
export const controlAddress = '127.0.0.3'

const maxOutput = 4 << 20

class ServerProcess {
  output = ''
  /** Characters of output dropped from the front (so marks stay valid). */
  dropped = 0
  exit: string | undefined

  private constructor(
    readonly child: ChildProcess,
    public url = '',
  ) {}

  static async start(configFile: string, dist: boolean): Promise<ServerProcess> {
    const entry = dist ? [join(repoRoot, 'dist/cli/bin.js')] : ['--import', 'tsx', join(repoRoot, 'src/cli/bin.ts')]
    const child = spawn(process.execPath, [...entry, 'serve', '--config', configFile, '--port', '0'], {
      cwd: repoRoot,
      env: serverEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    live.add(child)
    const server = new ServerProcess(child)
    const take = (chunk: Buffer) => {
      server.output += chunk.toString()
      if (server.output.length > maxOutput) {
        const cut = server.output.length - maxOutput / 2
        server.output = server.output.slice(cut)
        server.dropped += cut
      }
    }
    child.stdout!.on('data', take)
    child.stderr!.on('data', take)
    child.once('exit', (code, signal) => {
      live.delete(child)
      server.exit = signal ?? `exit ${code}`
    })
    const deadline = Date.now() + 30_000
    for (;;) {
      const match = /listening on (http:\/\/\S+)/.exec(server.output)
      if (match) {
        server.url = match[1]!
        return server
      }
      if (server.exit !== undefined || Date.now() > deadline) {
        if (server.exit === undefined) await stop(child)
        throw new ServerStartError(server.output)
      }
      await sleep(25)
    }
  }

  get pid(): number {
    return this.child.pid!
  }

  get running(): boolean {
    return this.exit === undefined
  }

  mark(): number {
    return this.dropped + this.output.length
  }

  since(mark: number): string {
    return this.output.slice(Math.max(0, mark - this.dropped))
  }

  async stop(): Promise<void> {
    await stop(this.child, 5000)
  }
}

class ServerStartError extends Error {
  constructor(readonly output: string) {
    super(`the server did not start:\n${output.trim().split('\n').slice(-20).join('\n')}`)
  }
}

// Servers still running are killed, and temp folders removed, however the suite ends.
const live = new Set<ChildProcess>()
const folders = new Set<string>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
  for (const folder of folders) rmSync(folder, { recursive: true, force: true })
})

/** Resident set size of a process, in bytes (NaN once it is gone). */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : NaN
  } catch {
    return NaN
  }
}

// ---- the prober --------------------------------------------------------------------------------

// A worker of its own, so that work on the harness's event loop (building a 4 MiB body, parsing
// the log) never shows up as server latency. CommonJS run with eval: no TypeScript loader needed.
const proberSource = `
const { parentPort } = require('node:worker_threads')
const http = require('node:http')
let run
function probe(s) {
  if (!s.active) return
  const started = performance.now()
  let finished = false
  const done = (failure) => {
    if (finished) return
    finished = true
    const ms = performance.now() - started
    s.request = undefined
    s.count++
    if (ms > s.worst) s.worst = ms
    if (failure !== undefined) {
      s.failed++
      if (s.failures.length < 5) s.failures.push(failure)
    }
    if (s.active) s.timer = setTimeout(() => probe(s), Math.max(0, s.intervalMs - ms))
  }
  s.started = started
  s.request = http.get({ host: s.host, port: s.port, path: '/healthz', agent: s.agent, localAddress: s.localAddress }, (res) => {
    res.resume()
    res.on('end', () => done(res.statusCode === 200 ? undefined : 'status ' + res.statusCode))
    res.on('error', (e) => done(e.code || e.message))
  })
  s.request.on('error', (e) => done(e.code || e.message))
}
parentPort.on('message', (m) => {
  if (m.cmd === 'start') {
    run = { ...m, active: true, worst: 0, count: 0, failed: 0, failures: [], agent: new http.Agent({ keepAlive: true, maxSockets: 1 }) }
    probe(run)
  } else if (m.cmd === 'stop') {
    const s = run
    s.active = false
    clearTimeout(s.timer)
    let pendingMs = 0
    if (s.request !== undefined) {
      pendingMs = performance.now() - s.started
      if (pendingMs > s.worst) s.worst = pendingMs
      s.request.destroy()
    }
    s.agent.destroy()
    parentPort.postMessage({ worstMs: s.worst, count: s.count, failed: s.failed, failures: s.failures, pendingMs })
  }
})
`

export interface ProbeResult {
  worstMs: number
  count: number
  failed: number
  failures: string[]
  /** A probe still unanswered when the attack ended, this long. */
  pendingMs: number
}

class Prober {
  readonly #worker = new Worker(proberSource, { eval: true, execArgv: [] })

  start(url: string, intervalMs = 10): void {
    const { hostname, port } = new URL(url)
    this.#worker.postMessage({ cmd: 'start', host: hostname, port: Number(port), localAddress: proberAddress, intervalMs })
  }

  stop(): Promise<ProbeResult> {
    return new Promise((resolve) => {
      this.#worker.once('message', (result: ProbeResult) => resolve(result))
      this.#worker.postMessage({ cmd: 'stop' })
    })
  }

  close(): Promise<number> {
    return this.#worker.terminate()
  }
}

// ---- answers and events ------------------------------------------------------------------------

/** 5xx codes a hostile request may meet: a server-wide bound, or the event log away. */
export const retryable5xxCodes = new Set(['EVP_OVERLOADED', 'EVP_LOG_UNAVAILABLE', 'EVP_LOG_NOT_WRITTEN', 'EVP_LOG_FULL', 'EVP_LOG_OUTCOME_UNKNOWN', 'EVP_LOG_CLOSED'])

/** Why a 5xx answer is not one of the documented retryable ones, or undefined. */
export function undocumented5xx(answer: Answer): string | undefined {
  if (answer.status === undefined || answer.status < 500) return undefined
  if (answer.code !== undefined) return retryable5xxCodes.has(answer.code) ? undefined : `${answer.status} ${answer.code}`
  // An intake batch answer: every item must be a retryable failure.
  if (isObject(answer.json)) {
    const items = [...asArray(answer.json['invalid']), ...asArray(answer.json['error'])]
    const codes = items.map((item) => (isObject(item) && isObject(item['context']) ? item['context']['code'] : undefined))
    if (answer.status === 503 && items.length > 0 && asArray(answer.json['invalid']).length === 0 && codes.every((c) => typeof c === 'string' && retryable5xxCodes.has(c))) return undefined
    return `${answer.status} with item codes ${[...new Set(codes.map(String))].join(', ')}`
  }
  return `${answer.status} without a code`
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

/** What became of one event of a POST. */
export type Outcome =
  | { kind: 'accepted' }
  /** 202 with ?hasty: processed after the answer. */
  | { kind: 'hasty' }
  | { kind: 'refused'; code: string; retry: boolean }
  /** No usable answer (network error, timeout): it may or may not have been appended. */
  | { kind: 'unknown' }

/**
 * Reads an intake answer for a batch of `count` events: what happened to each, and what is
 * wrong with the answer itself (EventGate's shapes: 201/202 empty; 207/400/500/503
 * `{invalid, error}` whose items have `index` and `context.code`; problems with a `code`).
 */
export function intakeOutcomes(count: number, answer: Answer): { outcomes: Outcome[]; malformed: string[] } {
  const malformed: string[] = []
  const all = (outcome: Outcome) => Array.from({ length: count }, () => outcome)
  if (answer.status === undefined) return { outcomes: all({ kind: 'unknown' }), malformed }
  const status = answer.status
  const type = header(answer.headers, 'content-type') ?? ''
  if (status === 201 || status === 202) {
    if (answer.bodyBytes !== 0) malformed.push(`${status} with a body of ${answer.bodyBytes} bytes`)
    return { outcomes: all(status === 201 ? { kind: 'accepted' } : { kind: 'hasty' }), malformed }
  }
  if (/^application\/problem\+json/i.test(type)) {
    if (answer.code === undefined) malformed.push(`${status} problem without a code`)
    if (isObject(answer.json) && answer.json['status'] !== status) malformed.push(`${status} problem whose status says ${String(answer.json['status'])}`)
    const retry = isObject(answer.json) && answer.json['canRetry'] === true
    return { outcomes: all({ kind: 'refused', code: answer.code ?? `${status}`, retry }), malformed }
  }
  if (![207, 400, 500, 503].includes(status) || !isObject(answer.json)) {
    malformed.push(`${status} ${type || 'without content type'}: neither an intake answer nor a problem`)
    return { outcomes: all({ kind: 'unknown' }), malformed }
  }
  const body = answer.json
  const outcomes: Outcome[] = all(status === 207 ? { kind: 'accepted' } : { kind: 'refused', code: '(omitted)', retry: status === 503 })
  const seen = new Set<number>()
  for (const group of ['invalid', 'error'] as const) {
    const items = body[group]
    if (items === undefined && (group === 'invalid' || status === 400)) {
      if (group === 'invalid') malformed.push(`${status} without an invalid array`)
      continue
    }
    if (!Array.isArray(items)) {
      malformed.push(`${status}: ${group} is not an array`)
      continue
    }
    for (const item of items) {
      const index = isObject(item) ? item['index'] : undefined
      const context = isObject(item) ? item['context'] : undefined
      const code = isObject(context) ? context['code'] : undefined
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) {
        malformed.push(`${status}: an ${group} item without a valid index (${JSON.stringify(index)})`)
        continue
      }
      if (typeof code !== 'string') malformed.push(`${status}: ${group} item ${index} without context.code`)
      if (seen.has(index)) malformed.push(`${status}: index ${index} listed twice`)
      seen.add(index)
      outcomes[index] = { kind: 'refused', code: typeof code === 'string' ? code : '(no code)', retry: isObject(context) && context['canRetry'] === true }
    }
  }
  const omitted = isObject(body['omitted']) ? Object.values(body['omitted']).reduce<number>((n, v) => n + (typeof v === 'number' ? v : 0), 0) : 0
  if (status === 207 && omitted === 0 && seen.size === 0) malformed.push('207 listing no refused event')
  if (status !== 207 && seen.size + omitted !== count) malformed.push(`${status}: ${seen.size} listed + ${omitted} omitted of ${count} events`)
  return { outcomes, malformed }
}

/** An event the suite follows into the log, by its `meta.id`. */
interface Tracked {
  id: string
  topic: string
  /**
   * good: valid by construction (a refusal fails unless its code is allowed; acknowledged, it
   * must be in the log once); bad: must be refused and never appear in the log; maybe: either,
   * but once acknowledged it must be in the log once.
   */
  expect: Expectation
  allowed: ReadonlySet<string>
  outcome: Outcome | undefined
  /** Fields whose stored value must equal what was sent (JSON text of the sent value). */
  compare?: Record<string, string>
}

/** A record read back from the log, parsed. */
export interface StoredEvent {
  topic: string
  partition: number
  offset: number
  timestamp: number
  key: string | null
  value: Record<string, unknown> | undefined
  raw: string
}

export type JsonObject = Record<string, unknown>

export type { Expectation }

// ---- what an attack is -------------------------------------------------------------------------

export interface Attack {
  name: string
  group: 'data loss' | 'denial of service' | 'leaks and integrity' | 'randomized'
  /** What it sends (for --help and the docs). */
  summary: string
  /** What is expected of the server. */
  expected: string
  timeoutMs: { quick: number; full: number }
  /** Also hold RSS during the attack under max(1.5×, +64 MiB) of its value before (slow clients). */
  boundRssDuring?: boolean
  /** Setup that is not measured: runs before the RSS sample and before the prober starts. */
  prepare?(ctx: AttackContext): Promise<void>
  run(ctx: AttackContext): Promise<void>
}

export interface PostOptions {
  query?: string
  headers?: Record<string, string>
  contentType?: string
  /** Sent as is instead of JSON.stringify(events) (the events are still tracked by index). */
  body?: Buffer | string
  timeoutMs?: number
}

/** What an attack gets: clients that record every answer, event tracking, the log, metrics. */
export interface AttackContext {
  readonly quick: boolean
  readonly limits: Limits
  readonly url: string
  readonly host: string
  readonly port: number
  readonly seed: number
  /** Aborted when the attack's time is up. */
  readonly signal: AbortSignal
  readonly serverPid: number
  /** Records a check; a false one fails the attack. Returns `ok`. */
  expect(ok: boolean, what: string): boolean
  note(text: string): void
  /** A request from the attacker's address, recorded. */
  request(options: Omit<RequestOptions, 'base'>): Promise<Answer>
  /** Records an answer obtained otherwise (raw sockets, fetch). */
  record(answer: Answer): void
  /** POST /v1/events; tracked events get their outcome. */
  post(events: readonly unknown[], options?: PostOptions): Promise<{ answer: Answer; outcomes: Outcome[]; malformed: string[] }>
  /** A valid eventplane/test/event event with a fresh meta.id, tracked as good. */
  event(stream?: string, fields?: JsonObject, options?: { allowed?: string[] }): JsonObject
  /** Tracks an event built by the attack (it must have a string meta.id). */
  track(event: JsonObject, options: { expect: Expectation; allowed?: string[]; compare?: string[] }): void
  /** GET /metrics from the harness's own address (not recorded as an answer of the attack). */
  metrics(headers?: Record<string, string>): Promise<{ status: number | undefined; text: string; bytes: number; ms: number }>
  /** An SSE stream from the attacker's address, closed when the attack ends; its answer is recorded. */
  stream(path: string, headers?: Record<string, string>): StreamHandle
  /** Registers a socket or stream to destroy when the attack ends. */
  own<T extends Closeable>(resource: T): T
  /** Records of a topic appended since the attack began. */
  readLog(topic: string): Promise<StoredEvent[]>
  /** Topics in the log now. */
  topics(): Promise<string[]>
  /** Records appended to a topic since the attack began (from the offsets, without reading them). */
  appendedSince(topic: string): Promise<number>
  /** Sleeps, or throws once the attack's time is up. */
  sleep(ms: number): Promise<void>
  /** Keeps a text (an SSE payload) for the path-leak check. */
  keepText(text: string): void
}

export interface AttackResult {
  name: string
  group: string
  /** Statuses and codes seen, most frequent first. */
  answers: string
  answerCounts: Array<[string, number]>
  rssBeforeMiB: number
  rssAfterMiB: number
  rssPeakMiB: number
  worstHealthMs: number
  probes: number
  good: { accepted: number; found: number } | undefined
  failures: string[]
  notes: string[]
  passed: boolean
  ms: number
}

/** Value of a Prometheus sample (`name{labels} value`), or undefined. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)/.exec(line)
    if (match === null || match[1] !== name) continue
    const labelText = match[3] ?? ''
    if (!Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) continue
    total = (total ?? 0) + Number(match[4])
  }
  return total
}

// ---- the suite ---------------------------------------------------------------------------------

export interface SuiteOptions {
  quick: boolean
  /** Run the compiled dist/cli/bin.js rather than src/ through tsx. */
  dist?: boolean
  seed?: number
  /**
   * The /healthz target (default 100 ms). `npm test` runs the quick set beside other test files
   * on a shared machine and gives it more room; `npm run attack` keeps 100 ms.
   */
  healthTargetMs?: number
  /** Progress lines (default: none). */
  progress?: (line: string) => void
}

const mib = 1024 * 1024

/** One server and its measurements, for a run of attacks one after another. */
export class Suite {
  readonly quick: boolean
  readonly limits: Limits
  readonly seed: number
  readonly dir: string
  /** Things about the run itself: config keys the server did not know, restarts. */
  readonly notes: string[] = []
  readonly #dist: boolean
  readonly #healthTargetMs: number
  readonly #progress: (line: string) => void
  #server: ServerProcess | undefined
  #prober: Prober | undefined
  #log: SqliteEventLog | undefined
  #configFile = ''
  #config: Record<string, unknown> = {}
  /** Paths that must never appear in an answer. */
  readonly #secrets: string[]

  constructor(options: SuiteOptions) {
    this.quick = options.quick
    this.limits = limitsFor(options.quick)
    this.seed = options.seed ?? Math.floor(Math.random() * 2 ** 31)
    this.#dist = options.dist === true
    this.#healthTargetMs = options.healthTargetMs ?? 100
    this.#progress = options.progress ?? (() => {})
    this.dir = mkdtempSync(join(tmpdir(), 'eventplane-attack-'))
    folders.add(this.dir)
    const root = repoRoot.replace(/\/+$/, '')
    this.#secrets = [...new Set([root, realpathSync(root), this.dir, realpathSync(this.dir)])]
  }

  get url(): string {
    return this.#server?.url ?? ''
  }

  get serverPid(): number {
    return this.#server?.pid ?? -1
  }

  /** Writes the config and starts the server; a config key the server does not know is dropped, noted, and the start retried. */
  async start(): Promise<void> {
    writeFileSync(join(this.dir, 'streams.yaml'), stringify(streamConfig()))
    mkdirSync(join(this.dir, 'data'), { recursive: true })
    this.#config = serverConfig(this.dir, this.limits)
    this.#configFile = join(this.dir, 'eventplane.yaml')
    for (let attempt = 0; ; attempt++) {
      writeFileSync(this.#configFile, stringify(this.#config))
      try {
        this.#server = await ServerProcess.start(this.#configFile, this.#dist)
        break
      } catch (error) {
        const unknown = error instanceof ServerStartError ? /(\S+) is not a known key/.exec(error.output) : null
        if (unknown === null || attempt > 20 || !dropKey(this.#config, unknown[1]!)) throw error
        this.notes.push(`the server does not know the config key ${unknown[1]}: it runs without it, and the attacks that depend on it will fail`)
      }
    }
    this.#prober = new Prober()
    this.#log = await openSqliteLog({ path: join(this.dir, 'data', 'events.sqlite') })
    await this.#warmUp()
    this.#progress(`server ${this.#server.url} (pid ${this.#server.pid}, ${this.#dist ? 'dist/' : 'src/ through tsx'}); config ${this.#configFile}`)
  }

  async stop(): Promise<void> {
    await this.#prober?.close()
    await this.#server?.stop()
    await this.#log?.close()
    rmSync(this.dir, { recursive: true, force: true })
    folders.delete(this.dir)
  }

  /** GET from the harness's own address. */
  control(path: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Answer> {
    return request({ base: this.url, path, headers, localAddress: controlAddress, timeoutMs })
  }

  /**
   * First uses that compile or load something (a schema's validator, the error schema, a
   * filter, the metrics), so that the first attack's /healthz latency is the attack's and
   * not a cold start's. From the harness's own address; these events are before every mark.
   */
  async #warmUp(): Promise<void> {
    const post = (events: unknown[]) =>
      request({ base: this.url, method: 'POST', path: '/v1/events', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events), localAddress: controlAddress, timeoutMs: 10_000 })
    const event = (stream: string, test: unknown) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream, id: randomUUID(), domain: 'example.org' }, test })
    await post([event(streams.test, 'warm-up'), event(streams.keyed, 'warm-up'), event(streams.flood, 'warm-up'), event(streams.test, 42)])
    const stream = openStream({ base: this.url, path: `/v2/stream/${streams.test}?filter=${encodeURIComponent('test == "warm-up"')}`, localAddress: controlAddress })
    await stream.answer
    stream.close()
    const since = openStream({ base: this.url, path: `/v2/stream/${streams.test}?since=${Date.now() - 60_000}`, localAddress: controlAddress })
    await since.answer
    since.close()
    for (const path of ['/metrics', '/?spec', '/v1/stream-configs', `/v1/stream-configs/${streams.test}`, '/w/api.php?action=streamconfigs&format=json', '/repositories', '/repositories/eventplane/jsonschema/eventplane/test/event/1.0.0', '/nope']) {
      await this.control(path)
    }
    await sleep(500)
  }

  /** Whether the server answers /healthz (200) within `timeoutMs`. */
  async answers(timeoutMs = 3000): Promise<boolean> {
    if (this.#server === undefined || !this.#server.running) return false
    const answer = await this.control('/healthz', {}, timeoutMs)
    return answer.status === 200
  }

  /**
   * Before an attack: a server that died is started again (same data); one that is still busy
   * with the last attack gets some time, then is restarted, so one attack's damage does not
   * fail the next.
   */
  async #ready(name: string): Promise<void> {
    const server = this.#server!
    if (!server.running) {
      this.notes.push(`restarted the server before ${name}: it had exited (${server.exit})`)
      this.#server = await ServerProcess.start(this.#configFile, this.#dist)
      await this.#warmUp()
      return
    }
    const deadline = Date.now() + (this.quick ? 10_000 : 60_000)
    let fast = 0
    while (Date.now() < deadline) {
      const started = performance.now()
      const ok = await this.answers(2000)
      fast = ok && performance.now() - started < 100 ? fast + 1 : 0
      if (fast >= 3) return
      await sleep(100)
    }
    this.notes.push(`restarted the server before ${name}: it was still not answering /healthz quickly`)
    await server.stop()
    this.#server = await ServerProcess.start(this.#configFile, this.#dist)
    await this.#warmUp()
  }

  async #marks(): Promise<Map<string, number[]>> {
    const log = this.#log!
    const marks = new Map<string, number[]>()
    for (const topic of await log.topics()) {
      const partitions = await log.partitions(topic)
      const ends: number[] = []
      for (let p = 0; p < partitions; p++) ends.push(await log.latest(topic, p))
      marks.set(topic, ends)
    }
    return marks
  }

  /** Topics in the log now. */
  async topicsNow(): Promise<string[]> {
    return this.#log!.topics()
  }

  /** Records appended to `topic` after `marks` were taken. */
  async appendedSince(topic: string, marks: Map<string, number[]>): Promise<number> {
    const log = this.#log!
    if (!(await log.topics()).includes(topic)) return 0
    let total = 0
    const partitions = await log.partitions(topic)
    for (let p = 0; p < partitions; p++) total += (await log.latest(topic, p)) - (marks.get(topic)?.[p] ?? 0)
    return total
  }

  /** Records of `topic` from `marks` (or its start) to its end, as far as `cursor` has not read them yet (for Context). */
  async readNew(topic: string, marks: Map<string, number[]>, cursor: Map<string, number[]>, into: StoredEvent[], exists = false): Promise<void> {
    const log = this.#log!
    // partitions() of a topic that does not exist would create it: never from the reader.
    if (!exists && !(await log.topics()).includes(topic)) return
    const partitions = await log.partitions(topic)
    const next = cursor.get(topic) ?? []
    for (let p = 0; p < partitions; p++) {
      const from = next[p] ?? marks.get(topic)?.[p] ?? (await log.earliest(topic, p))
      const end = await log.latest(topic, p)
      if (from >= end) {
        next[p] = from
        continue
      }
      let last = from - 1
      for await (const record of log.read({ topic, partition: p, offset: from }, { follow: false })) {
        if (record.offset >= end) break
        last = record.offset
        const raw = record.value.toString('utf8')
        let value: Record<string, unknown> | undefined
        try {
          const parsed: unknown = JSON.parse(raw)
          value = isObject(parsed) ? parsed : undefined
        } catch {
          value = undefined
        }
        into.push({ topic, partition: p, offset: record.offset, timestamp: record.timestamp, key: record.key?.toString('utf8') ?? null, value, raw })
      }
      next[p] = last + 1
    }
    cursor.set(topic, next)
  }

  /** Runs one attack and measures it against the targets. */
  async run(attack: Attack): Promise<AttackResult> {
    const started = performance.now()
    await this.#ready(attack.name)
    const server = this.#server!
    const ctx = new Context(this, attack, server, await this.#marks())
    const failures = ctx.failures
    const timeoutMs = this.quick ? attack.timeoutMs.quick : attack.timeoutMs.full
    const outputMark = server.mark()

    const guarded = async (phase: string, work: () => Promise<void>, ms: number) => {
      let timer: NodeJS.Timeout | undefined
      const expired = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          failures.push(`timeout: ${phase} did not finish within ${Math.round(ms / 1000)} s`)
          ctx.abort()
          resolve()
        }, ms)
      })
      try {
        await Promise.race([
          work().catch((error: unknown) => {
            if (!ctx.signal.aborted) failures.push(`error: ${phase} threw ${error instanceof Error ? error.message : String(error)}`)
          }),
          expired,
        ])
      } finally {
        clearTimeout(timer)
      }
    }

    if (attack.prepare !== undefined) await guarded('prepare', () => attack.prepare!(ctx), timeoutMs * 2)
    const rssBefore = rssBytes(server.pid)
    let rssPeak = rssBefore
    const sampler = setInterval(() => {
      const rss = rssBytes(server.pid)
      if (rss > rssPeak) rssPeak = rss
    }, 100)
    this.#prober!.start(server.url)
    if (!ctx.signal.aborted) await guarded('the attack', () => attack.run(ctx), timeoutMs)
    // What the attack left behind (hasty batches, error events written after the answer,
    // sockets being torn down) is measured too.
    await sleep(this.quick ? 300 : 1000)
    const probe = await this.#prober!.stop()
    clearInterval(sampler)
    ctx.cleanup()

    // The process still answers.
    const alive = await this.answers(5000)
    if (!server.running) failures.push(`crash: the server exited (${server.exit})`)
    else if (!alive) failures.push('crash: the server no longer answers /healthz within 5 s')
    const output = server.since(outputMark)
    const fatal = /FATAL ERROR[^\n]*|JavaScript heap out of memory|Uncaught[^\n]*|uncaughtException[^\n]*|unhandledRejection[^\n]*/.exec(output)
    if (fatal !== null) failures.push(`crash: the server printed ${JSON.stringify(fatal[0].slice(0, 200))}`)
    const errorLines = output.split('\n').filter((line) => /"level":(50|60)\b/.test(line))
    if (errorLines.length > 0) ctx.note(`the server logged ${errorLines.length} error line(s), e.g. ${summarizeLogLine(errorLines[0]!)}`)

    // /healthz stayed fast while the attack ran.
    const healthTarget = this.#healthTargetMs
    if (probe.worstMs >= healthTarget) failures.push(`healthz: worst ${Math.round(probe.worstMs)} ms (target < ${healthTarget} ms)${probe.pendingMs > 0 ? `, one probe unanswered after ${Math.round(probe.pendingMs)} ms` : ''}`)
    if (probe.failed > 0) failures.push(`healthz: ${probe.failed} of ${probe.count} probes failed (${probe.failures.join(', ')})`)

    // No undocumented 5xx, no path of the machine in any answer.
    const fives = new Map<string, number>()
    for (const why of ctx.fives) fives.set(why, (fives.get(why) ?? 0) + 1)
    for (const [why, n] of fives) failures.push(`5xx: ${why}${n > 1 ? ` ×${n}` : ''} (only ${[...retryable5xxCodes].join(', ')} may be 5xx)`)
    const leaks = [...new Set(ctx.leaks)]
    if (leaks.length > 0) failures.push(`leak: ${leaks.slice(0, 3).join('; ')}${leaks.length > 3 ? ` (+${leaks.length - 3} more)` : ''}`)

    // Every acknowledged good event in the log exactly once; nothing refused in it. The file is
    // read directly, so this holds (or not) even for a server that died.
    const good = await this.#checkLog(ctx)

    // RSS back.
    const rssAfter = alive ? await this.#settle(server.pid, rssBefore) : rssBytes(server.pid)
    const rssTarget = Math.max(rssBefore * 1.2, rssBefore + 15 * mib)
    if (Number.isFinite(rssAfter) && rssAfter > rssTarget) {
      failures.push(`rss: ${fmtMiB(rssAfter)} MiB after, over the ${fmtMiB(rssTarget)} MiB allowed (max of +20 % and +15 MiB over ${fmtMiB(rssBefore)} MiB)`)
    }
    if (attack.boundRssDuring === true) {
      const bound = Math.max(rssBefore * 1.5, rssBefore + 64 * mib)
      if (rssPeak > bound) failures.push(`rss: peaked at ${fmtMiB(rssPeak)} MiB during the attack, over the ${fmtMiB(bound)} MiB bound`)
    }

    const counts = new Map<string, number>()
    for (const label of ctx.labels) counts.set(label, (counts.get(label) ?? 0) + 1)
    const answerCounts = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    const result: AttackResult = {
      name: attack.name,
      group: attack.group,
      answers: summarizeCounts(answerCounts),
      answerCounts,
      rssBeforeMiB: rssBefore / mib,
      rssAfterMiB: rssAfter / mib,
      rssPeakMiB: rssPeak / mib,
      worstHealthMs: probe.worstMs,
      probes: probe.count,
      good,
      failures: [...failures],
      notes: ctx.notes,
      passed: failures.length === 0,
      ms: performance.now() - started,
    }
    this.#progress(`${result.passed ? 'ok  ' : 'FAIL'} ${attack.name} (${(result.ms / 1000).toFixed(1)} s)`)
    return result
  }

  /** Where `text` names a path of the server's machine (the repository, the temp folder). */
  leaksIn(where: string, text: string): string[] {
    const found: string[] = []
    for (const secret of this.#secrets) {
      const at = text.indexOf(secret)
      if (at !== -1) found.push(`${where} contains ${secret}: …${JSON.stringify(text.slice(Math.max(0, at - 60), at + secret.length + 40)).slice(1, -1)}…`)
    }
    return found
  }

  async #checkLog(ctx: Context): Promise<{ accepted: number; found: number } | undefined> {
    const tracked = [...ctx.tracked.values()]
    if (tracked.length === 0) return undefined
    // A good event that may be refused for a reason of the moment (a regex stream past the
    // limit) is not required of a hasty batch, whose refusals nobody sees.
    const mustBeThere = (t: Tracked) => t.expect !== 'bad' && (t.outcome?.kind === 'accepted' || (t.outcome?.kind === 'hasty' && t.expect === 'good' && t.allowed.size === 0))
    const expected = tracked.filter(mustBeThere)
    const topics = [...new Set(tracked.map((t) => t.topic))]
    const counts = new Map<string, number>()
    const stored = new Map<string, StoredEvent>()
    const cursor = new Map<string, number[]>()
    const records: StoredEvent[] = []
    const take = () => {
      for (const record of records.splice(0)) {
        const meta = record.value?.['meta']
        const id = isObject(meta) && typeof meta['id'] === 'string' ? meta['id'] : undefined
        if (id === undefined || !ctx.tracked.has(id)) continue
        counts.set(id, (counts.get(id) ?? 0) + 1)
        stored.set(id, record)
      }
    }
    const readAll = async () => {
      const existing = new Set(await this.topicsNow())
      for (const topic of topics) if (existing.has(topic)) await this.readNew(topic, ctx.marks, cursor, records, true)
      take()
    }
    // Hasty events are processed after the answer: give them a few seconds.
    const hasty = tracked.some((t) => t.outcome?.kind === 'hasty' || t.outcome?.kind === 'unknown')
    const deadline = Date.now() + (hasty ? (this.quick ? 3000 : 5000) : 1000)
    for (;;) {
      await readAll()
      if (expected.every((t) => counts.has(t.id)) || Date.now() > deadline) break
      await sleep(200)
    }
    // Late duplicates (and late hasty mistakes) would show up now.
    await sleep(hasty ? 500 : 200)
    await readAll()

    const problems = new Map<string, string[]>()
    const add = (kind: string, id: string) => problems.set(kind, [...(problems.get(kind) ?? []), id])
    let found = 0
    for (const t of tracked) {
      const n = counts.get(t.id) ?? 0
      const outcome = t.outcome
      const refused = outcome?.kind === 'refused' && !outcome.retry
      if (t.expect === 'bad') {
        if (outcome?.kind === 'accepted') add('an event that must be refused was acknowledged', t.id)
        else if (n > 0) add('an event that must be refused is in the log', t.id)
        continue
      }
      if (t.expect === 'good' && outcome?.kind === 'refused' && !outcome.retry && !t.allowed.has(outcome.code)) add(`good event refused with ${outcome.code}`, t.id)
      if (mustBeThere(t)) {
        if (n === 1) found++
        else if (n === 0) add(outcome?.kind === 'hasty' ? 'good event of a hasty (202) batch missing from the log' : 'acknowledged event missing from the log', t.id)
        else add(`acknowledged event in the log ${n} times`, t.id)
      } else if (refused && n > 0) add(`refused (${outcome.code}) event found in the log`, t.id)
      else if (n > 1) add(`event in the log ${n} times`, t.id)
      if (n >= 1 && t.compare !== undefined && t.expect === 'good') {
        const value = stored.get(t.id)?.value
        for (const [path, sent] of Object.entries(t.compare)) {
          if (JSON.stringify(getPath(value, path)) !== sent) add(`stored ${path} differs from what was sent`, t.id)
        }
      }
    }
    for (const [kind, ids] of problems) ctx.failures.push(`log: ${kind}: ${ids.length} (e.g. meta.id ${ids[0]})`)
    return { accepted: expected.length, found }
  }

  /** Waits until RSS is within the target, or stops falling (bounded); returns it. */
  async #settle(pid: number, before: number): Promise<number> {
    const target = Math.max(before * 1.2, before + 15 * mib)
    const deadline = Date.now() + (this.quick ? 5000 : 20_000)
    const flatWindow = this.quick ? 8 : 20 // samples of 250 ms
    const samples: number[] = []
    for (;;) {
      const rss = rssBytes(pid)
      if (!Number.isFinite(rss) || rss <= target || Date.now() > deadline) return rss
      samples.push(rss)
      if (samples.length > flatWindow && samples[samples.length - 1 - flatWindow]! - rss < mib) return rss
      await sleep(250)
    }
  }
}

function dropKey(config: Record<string, unknown>, dotted: string): boolean {
  const parts = dotted.split('.')
  let node: unknown = config
  for (const part of parts.slice(0, -1)) node = isObject(node) ? node[part] : undefined
  if (!isObject(node) || !(parts.at(-1)! in node)) return false
  delete node[parts.at(-1)!]
  return true
}

export function getPath(value: unknown, path: string): unknown {
  let node = value
  for (const part of path.split('.')) node = isObject(node) && Object.hasOwn(node, part) ? node[part] : undefined
  return node
}

function summarizeLogLine(line: string): string {
  try {
    const parsed = JSON.parse(line) as { msg?: string; err?: { message?: string }; code?: string }
    return JSON.stringify([parsed.msg, parsed.code ?? parsed.err?.message].filter(Boolean).join(': ').slice(0, 160))
  } catch {
    return JSON.stringify(line.slice(0, 160))
  }
}

export function summarizeCounts(counts: Array<[string, number]>, max = 4): string {
  if (counts.length === 0) return '–'
  const shown = counts.slice(0, max).map(([label, n]) => (n > 1 ? `${label} ×${n}` : label))
  const rest = counts.slice(max).reduce((n, [, c]) => n + c, 0)
  return shown.join(', ') + (rest > 0 ? `, … ${rest} more` : '')
}

export function fmtMiB(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / mib).toFixed(0) : 'n/a'
}

// ---- the context an attack runs in --------------------------------------------------------------

class Context implements AttackContext {
  /** Labels of every answer (bodies are not kept: they are checked as they are recorded). */
  readonly labels: string[] = []
  /** Why an answer was an undocumented 5xx, per answer that was. */
  readonly fives: string[] = []
  readonly leaks: string[] = []
  readonly failures: string[] = []
  readonly notes: string[] = []
  readonly tracked = new Map<string, Tracked>()
  readonly #resources = new Set<Closeable>()
  readonly #controller = new AbortController()
  readonly #readCursor = new Map<string, number[]>()
  readonly #read = new Map<string, StoredEvent[]>()

  constructor(
    readonly suite: Suite,
    readonly attack: Attack,
    readonly server: ServerProcess,
    readonly marks: Map<string, number[]>,
  ) {
    // Every request in flight listens for the end of the attack.
    setMaxListeners(0, this.#controller.signal)
  }

  get quick() {
    return this.suite.quick
  }
  get limits() {
    return this.suite.limits
  }
  get url() {
    return this.server.url
  }
  get host() {
    return new URL(this.server.url).hostname
  }
  get port() {
    return Number(new URL(this.server.url).port)
  }
  get seed() {
    return this.suite.seed
  }
  get signal() {
    return this.#controller.signal
  }
  get serverPid() {
    return this.server.pid
  }

  abort(): void {
    this.#controller.abort()
  }

  expect(ok: boolean, what: string): boolean {
    if (!ok) this.failures.push(`expect: ${what}`)
    return ok
  }

  note(text: string): void {
    this.notes.push(text)
  }

  record(answer: Answer): void {
    this.labels.push(answer.label)
    const why = undocumented5xx(answer)
    if (why !== undefined) this.fives.push(why)
    const where = `${answer.method} ${answer.path.slice(0, 60)} → ${answer.label}`
    this.leaks.push(...this.suite.leaksIn(`${where} body`, answer.body.toString('utf8')))
    for (const [name, value] of Object.entries(answer.headers)) this.leaks.push(...this.suite.leaksIn(`${where} header ${name}`, String(value)))
  }

  keepText(text: string): void {
    this.leaks.push(...this.suite.leaksIn('a streamed event', text))
  }

  async request(options: Omit<RequestOptions, 'base'>): Promise<Answer> {
    const answer = await request({ ...options, base: this.url, signal: this.signal, localAddress: options.localAddress ?? attackerAddress })
    this.record(answer)
    return answer
  }

  async post(events: readonly unknown[], options: PostOptions = {}) {
    const body = options.body ?? JSON.stringify(events)
    const answer = await this.request({
      method: 'POST',
      path: `/v1/events${options.query === undefined ? '' : `?${options.query}`}`,
      headers: { 'content-type': options.contentType ?? 'application/json', ...options.headers },
      body,
      timeoutMs: options.timeoutMs ?? 30_000,
    })
    const { outcomes, malformed } = intakeOutcomes(events.length, answer)
    events.forEach((event, index) => {
      const id = getPath(event, 'meta.id')
      const tracked = typeof id === 'string' ? this.tracked.get(id) : undefined
      if (tracked !== undefined && tracked.outcome === undefined) tracked.outcome = outcomes[index]
    })
    return { answer, outcomes, malformed }
  }

  event(stream: string = streams.test, fields: JsonObject = {}, options: { allowed?: string[] } = {}): JsonObject {
    const { meta, ...rest } = fields
    const event: JsonObject = { $schema: '/eventplane/test/event/1.0.0', meta: { stream, id: randomUUID(), ...(isObject(meta) ? meta : {}) }, test: `${this.attack.name} good`, ...rest }
    this.track(event, { expect: 'good', allowed: options.allowed ?? [] })
    return event
  }

  track(event: JsonObject, options: { expect: Expectation; allowed?: string[]; compare?: string[] }): void {
    const id = getPath(event, 'meta.id')
    const stream = getPath(event, 'meta.stream')
    if (typeof id !== 'string') throw new Error('a tracked event needs a string meta.id')
    const topic = `${this.limits.topicPrefix}${typeof stream === 'string' ? stream : 'unknown'}`
    const compare = options.compare === undefined ? undefined : Object.fromEntries(options.compare.map((path) => [path, JSON.stringify(getPath(event, path))]))
    this.tracked.set(id, { id, topic, expect: options.expect, allowed: new Set(options.allowed ?? []), outcome: undefined, ...(compare ? { compare } : {}) })
  }

  async metrics(headers: Record<string, string> = {}) {
    const answer = await this.suite.control('/metrics', headers, 10_000)
    return { status: answer.status, text: answer.body.toString('utf8'), bytes: answer.bodyBytes, ms: answer.ms }
  }

  stream(path: string, headers: Record<string, string> = {}): StreamHandle {
    const handle = openStream({ base: this.url, path, headers, localAddress: attackerAddress, keepBody: (text) => this.keepText(text) })
    this.own(handle)
    void handle.answer.then((answer) => this.record(answer))
    return handle
  }

  own<T extends Closeable>(resource: T): T {
    this.#resources.add(resource)
    return resource
  }

  async readLog(topic: string): Promise<StoredEvent[]> {
    const into = this.#read.get(topic) ?? []
    this.#read.set(topic, into)
    await this.suite.readNew(topic, this.marks, this.#readCursor, into)
    return into
  }

  async topics(): Promise<string[]> {
    return this.suite.topicsNow()
  }

  async appendedSince(topic: string): Promise<number> {
    return this.suite.appendedSince(topic, this.marks)
  }

  async sleep(ms: number): Promise<void> {
    if (this.signal.aborted) throw new Error('aborted')
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.signal.addEventListener('abort', done, { once: true })
    })
    if (this.signal.aborted) throw new Error('aborted')
  }

  cleanup(): void {
    this.abort()
    for (const resource of this.#resources) closeQuietly(resource)
    this.#resources.clear()
  }
}
