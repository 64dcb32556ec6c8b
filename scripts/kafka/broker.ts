/**
 * A real Apache Kafka broker for tests and local use: one KRaft node (broker and controller
 * in one JVM) run from the jars on Maven Central, with no Docker and no tarball. The jars are
 * collected once into .cache/kafka/<version>/jars (gitignored; Maven's ~/.m2 makes fresh
 * clones fast too). Every start formats a fresh temp folder, so brokers never share state.
 *
 *   const kafka = await startKafka({ partitions: 3 })
 *   const producer = new Producer({ clientId: 'test', bootstrapBrokers: [kafka.bootstrap] })
 *   …
 *   await kafka.stop()
 *
 * Run directly it is a small CLI (`fetch`, `start`): see `usage` below.
 * The Kafka version is set in pom.xml beside this file, and only there.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { delimiter, join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = fileURLToPath(new URL('.', import.meta.url))
const repoRoot = resolve(here, '..', '..')
const pomFile = join(here, 'pom.xml')
const log4jConfig = join(here, 'log4j2.properties')

// Maven 3.8's bare `dependency:` prefix resolves to plugin 2.8, which predates the options used here.
const copyDependencies = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies'

/** The Kafka version pom.xml asks for, e.g. "4.4.0". */
export const kafkaVersion = readKafkaVersion()

/** Where fetchKafkaJars puts the jars unless told otherwise. */
export const defaultJarsDir = join(repoRoot, '.cache', 'kafka', kafkaVersion, 'jars')

// Written into the jars folder last: a folder without it (or for another pom.xml) is incomplete.
const markerName = '.complete'

const readyTimeoutMs = 90_000
const stopGraceMs = 15_000
// What logs() keeps of the broker's output: it logs at warn, so this is many minutes of it.
const logLimit = 256 * 1024

export interface FetchOptions {
  /** Folder for the jars (default .cache/kafka/<version>/jars under the repository root). */
  dir?: string
  /** No progress lines on stderr. */
  quiet?: boolean
}

/**
 * Collects the broker's jars (Kafka, its dependencies, Log4j 2 and the SLF4J binding) into one
 * folder with Maven, once: later calls find the folder complete and return at once.
 * Resolves with the folder, whose `*` is the classpath.
 */
export async function fetchKafkaJars(options: FetchOptions = {}): Promise<string> {
  const dir = options.dir ?? defaultJarsDir
  const fingerprint = pomFingerprint()
  if (isComplete(dir, fingerprint)) return dir
  javaCommand()
  const mvn = findOnPath('mvn')
  if (mvn === undefined) throw new Error('Maven (mvn) is needed to fetch the Kafka jars and is not on the PATH: apt-get install maven')

  const say = progress(options.quiet)
  say(`fetching Kafka ${kafkaVersion} jars from Maven Central (first run only)…`)
  const started = Date.now()
  // A staging folder renamed into place, so a run that is killed half way (or a second test
  // process fetching at the same time) never leaves a folder that looks complete.
  const staging = `${dir}.partial-${process.pid}`
  rmSync(staging, { recursive: true, force: true })
  const maven = await run(mvn, ['-B', '-q', '-f', pomFile, copyDependencies, '-DincludeScope=runtime', `-DoutputDirectory=${staging}`])
  if (maven.code !== 0) {
    rmSync(staging, { recursive: true, force: true })
    throw new Error(`Maven could not fetch the Kafka ${kafkaVersion} jars (mvn exited with ${maven.code}). Last lines of its output:\n${tail(maven.output, 30)}`)
  }
  const jars = jarsIn(staging)
  if (!jars.some((jar) => jar.startsWith('kafka_2.13-'))) {
    rmSync(staging, { recursive: true, force: true })
    throw new Error(`Maven succeeded but ${staging} holds no kafka_2.13 jar; check ${pomFile}`)
  }
  writeFileSync(join(staging, markerName), `${fingerprint}\n${jars.join('\n')}\n`)
  if (!isComplete(dir, fingerprint)) {
    rmSync(dir, { recursive: true, force: true })
    renameSync(staging, dir)
  }
  rmSync(staging, { recursive: true, force: true })
  const mb = jars.reduce((sum, jar) => sum + statSync(join(dir, jar)).size, 0) / 1e6
  say(`fetched ${jars.length} jars (${mb.toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s into ${dir}`)
  return dir
}

export interface KafkaOptions {
  /** `num.partitions`: how many partitions an auto-created topic gets (default 1). */
  partitions?: number
  /** Keep the data in this folder across runs (formatted only the first time) instead of a fresh temp folder. */
  logDir?: string
  /** No progress lines on stderr. */
  quiet?: boolean
  /** Copy the broker's own output (warnings, errors) to stderr as it comes; logs() has it either way. */
  echo?: boolean
  /** How long to wait for the broker to accept connections (default 90 s). */
  readyTimeoutMs?: number
  /** Where the jars are or go (see fetchKafkaJars). */
  jarsDir?: string
  /** Listen on these ports (to restart a broker where its clients expect it) instead of free ones. */
  ports?: { port: number; controllerPort: number }
  /** Require SASL/PLAIN with this user (the listener is then SASL_PLAINTEXT) instead of no authentication. */
  sasl?: { username: string; password: string }
}

export interface KafkaBroker {
  /** The PLAINTEXT listener as host:port, e.g. "127.0.0.1:40123", for `bootstrapBrokers`. */
  bootstrap: string
  /** The broker JVM's process id. */
  pid: number
  /** The Kafka version running. */
  version: string
  /** The client and controller ports, to start it again at the same address (with the same logDir). */
  ports: { port: number; controllerPort: number }
  /** The broker's output so far (its last 256 KiB). */
  logs(): string
  /** Resolves with the exit code (or signal) when the broker JVM exits, for whatever reason. */
  exited: Promise<number | string>
  /** SIGTERM, up to 15 s for a clean shutdown, then SIGKILL; removes the temp folder. Safe to call twice. */
  stop(): Promise<void>
}

/**
 * Starts a single-node Kafka broker on 127.0.0.1 and resolves once it accepts connections.
 * Fetches the jars first if needed. The broker dies with this process: on a normal exit it is
 * killed, and a small watchdog kills it when this process is killed outright.
 */
export async function startKafka(options: KafkaOptions = {}): Promise<KafkaBroker> {
  const java = javaCommand()
  const jars = await fetchKafkaJars({ dir: options.jarsDir, quiet: options.quiet })
  // Free ports can be taken by someone else before the JVM binds them: pick new ones and retry.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(java, jars, options)
    } catch (error) {
      if (!(error instanceof PortTakenError) || attempt === 3 || options.ports !== undefined) throw error
    }
  }
}

class PortTakenError extends Error {}

export interface ConsoleProduceOptions {
  /** host:port of a broker. */
  bootstrap: string
  /** The topic's name in Kafka; it should exist (with the partitions wanted) before. */
  topic: string
  /** One record a line, `key<TAB>value` (a key or value equal to `<null>` is null); no tabs or newlines inside. */
  lines: string[]
  /** `compression.type` of the producer (default none). */
  compression?: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'
  /** Where the jars are (see fetchKafkaJars). */
  jarsDir?: string
}

/**
 * Writes records with Kafka's own console producer (org.apache.kafka.tools.ConsoleProducer, from
 * the kafka-tools jar in pom.xml), a Java producer like MirrorMaker, Connect or Flink: its snappy
 * is snappy-java's framed stream, its zstd comes from zstd-jni. All lines of one partition go in
 * one record batch (linger of 5 s, 1 MiB batches; the end of input flushes), and it resolves once
 * the producer has exited after every record was acknowledged.
 *
 *   await consoleProduce({ bootstrap, topic: 'ns.events', compression: 'snappy', lines: ['k1\tv1', 'k2\tv2'] })
 */
export async function consoleProduce(options: ConsoleProduceOptions): Promise<void> {
  const java = javaCommand()
  const jars = await fetchKafkaJars({ dir: options.jarsDir, quiet: true })
  const child = spawn(java, [
    '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', `-Dlog4j2.configurationFile=${log4jConfig}`, '-Djava.awt.headless=true',
    '-cp', join(jars, '*'), 'org.apache.kafka.tools.ConsoleProducer',
    '--bootstrap-server', options.bootstrap,
    '--topic', options.topic,
    '--compression-codec', options.compression ?? 'none',
    '--batch-size', String(1 << 20),
    '--command-property', 'linger.ms=5000',
    '--command-property', 'acks=all',
    '--reader-property', 'parse.key=true',
    '--reader-property', 'null.marker=<null>',
  ], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] })
  const output = new OutputTail(logLimit)
  child.stdout!.on('data', (chunk: Buffer) => output.add(chunk))
  child.stderr!.on('data', (chunk: Buffer) => output.add(chunk))
  const exited = exitOf(child)
  child.stdin!.end(options.lines.map((line) => `${line}\n`).join(''))
  const code = await exited
  // The console producer logs a failed send and still exits 0: its output must be clean too.
  if (code !== 0 || /ERROR|Exception/.test(output.text())) {
    throw new Error(`the console producer failed (exit ${code}) writing to ${options.topic}:\n${tail(output.text(), 30) || '(no output)'}`)
  }
}

async function launch(java: string, jars: string, options: KafkaOptions): Promise<KafkaBroker> {
  const say = progress(options.quiet)
  const started = Date.now()
  const work = mkdtempSync(join(tmpdir(), 'eventplane-kafka-'))
  const removeWork = () => rmSync(work, { recursive: true, force: true })
  const [port, controllerPort] = options.ports === undefined ? await freePorts(2) : [options.ports.port, options.ports.controllerPort]
  const config = join(work, 'server.properties')
  writeFileSync(
    config,
    serverProperties({ port: port!, controllerPort: controllerPort!, dataDir: options.logDir ?? join(work, 'data'), partitions: options.partitions ?? 1, sasl: options.sasl }),
  )
  const classpath = join(jars, '*')
  const logging = [`-Dlog4j2.configurationFile=${log4jConfig}`, '-Djava.awt.headless=true']

  // StorageTool calls System.exit, so it gets a JVM of its own; a short-lived one, hence the
  // small heap and the C1-only compiler.
  // A kept data folder is formatted once; later starts reuse it (and its cluster id) as it is.
  const formatted = options.logDir !== undefined && existsSync(join(options.logDir, 'meta.properties'))
  const format = formatted ? { code: 0, output: '' } : await run(java, [
    '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', ...logging, '-cp', classpath,
    'kafka.tools.StorageTool', 'format', '--config', config, '--cluster-id', clusterId(),
  ])
  if (format.code !== 0) {
    removeWork()
    throw new Error(`kafka.tools.StorageTool format failed (exit ${format.code}):\n${tail(format.output, 20)}`)
  }
  const formatSeconds = (Date.now() - started) / 1000

  say(`starting Kafka ${kafkaVersion} on 127.0.0.1:${port}…`)
  // The wildcard classpath reaches java as it is (no shell): java expands `dir/*` to its jars.
  // Detached (its own process group), so a Ctrl-C meant for this process reaches the broker only
  // through stop() or the watchdog, never twice.
  const child = spawn(java, [
    '-Xms256m', '-Xmx512m', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:+ExitOnOutOfMemoryError', ...logging,
    '-cp', classpath, 'kafka.Kafka', config,
  ], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const output = new OutputTail(logLimit, options.echo ? process.stderr : undefined)
  child.stdout!.on('data', (chunk: Buffer) => output.add(chunk))
  child.stderr!.on('data', (chunk: Buffer) => output.add(chunk))
  let spawnError: Error | undefined
  child.once('error', (error) => (spawnError = error))
  const exited = exitOf(child)

  // Neither the JVM nor its pipes keep this process alive: a test that forgets stop() still ends,
  // and then the exit hook below kills the broker.
  child.unref()
  ;(child.stdout as Socket).unref()
  ;(child.stderr as Socket).unref()
  const watchdog = child.pid === undefined ? undefined : startWatchdog(child.pid, work)
  const onExit = () => {
    watchdog?.kill('SIGKILL')
    child.kill('SIGKILL')
    removeWork()
  }
  process.once('exit', onExit)
  // Once the JVM is gone its pid may be reused: the watchdog must not signal it any more.
  void exited.then(() => watchdog?.kill('SIGKILL'))

  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      watchdog?.kill('SIGKILL')
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), stopGraceMs)
        await exited
        clearTimeout(timer)
      }
      process.off('exit', onExit)
      removeWork()
    })())

  const deadline = Date.now() + (options.readyTimeoutMs ?? readyTimeoutMs)
  // The listener socket opens only once the broker is unfenced (SocketServer defers it so that
  // "port open" means ready), so a TCP connect is the readiness check.
  while (!(await canConnect(port!))) {
    const failure =
      spawnError !== undefined ? `could not run ${java}: ${spawnError.message}`
      : child.exitCode !== null || child.signalCode !== null ? `the broker exited (${child.exitCode ?? child.signalCode}) before it was ready`
      : Date.now() > deadline ? `the broker was not ready after ${((Date.now() - started) / 1000).toFixed(0)} s`
      : undefined
    if (failure !== undefined) {
      await stop()
      const logs = output.text()
      if (/Address already in use/.test(logs)) throw new PortTakenError(`port ${port} or ${controllerPort} was taken`)
      throw new Error(`Kafka ${kafkaVersion}: ${failure}. Last lines of its output:\n${tail(logs, 30) || '(none)'}`)
    }
    await sleep(200)
  }
  say(`Kafka ${kafkaVersion} ready on 127.0.0.1:${port} in ${((Date.now() - started) / 1000).toFixed(1)} s (format ${formatSeconds.toFixed(1)} s), pid ${child.pid}, RSS ${rssMiB(child.pid!)}`)
  return { bootstrap: `127.0.0.1:${port}`, pid: child.pid!, version: kafkaVersion, ports: { port: port!, controllerPort: controllerPort! }, logs: () => output.text(), exited, stop }
}

/**
 * server.properties for one node that is broker and controller, with a static quorum (so the
 * format step needs no --standalone) and every internal topic at one replica and partition.
 */
function serverProperties(o: { port: number; controllerPort: number; dataDir: string; partitions: number; sasl: KafkaOptions['sasl'] }): string {
  // With SASL the client listener is SASL_PLAINTEXT (PLAIN, one user, who is also the broker
  // talking to itself); the controller listener stays PLAINTEXT on loopback.
  const listener = o.sasl === undefined ? 'PLAINTEXT' : 'SASL_PLAINTEXT'
  const quote = (text: string) => `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
  const sasl =
    o.sasl === undefined
      ? []
      : [
          'sasl.enabled.mechanisms=PLAIN',
          'sasl.mechanism.inter.broker.protocol=PLAIN',
          `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=${quote(o.sasl.username)} password=${quote(o.sasl.password)} user_${o.sasl.username}=${quote(o.sasl.password)};`,
        ]
  return `${[
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${o.controllerPort}`,
    `listeners=${listener}://127.0.0.1:${o.port},CONTROLLER://127.0.0.1:${o.controllerPort}`,
    `advertised.listeners=${listener}://127.0.0.1:${o.port}`,
    'controller.listener.names=CONTROLLER',
    `inter.broker.listener.name=${listener}`,
    `listener.security.protocol.map=CONTROLLER:PLAINTEXT,${listener}:${listener}`,
    ...sasl,
    `log.dirs=${o.dataDir}`,
    `num.partitions=${o.partitions}`,
    'auto.create.topics.enable=true',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // Default 3000: every first consumer-group join would wait 3 s.
    'group.initial.rebalance.delay.ms=0',
  ].join('\n')}\n`
}

/**
 * A cluster id as Kafka's Uuid.randomUuid() makes it: 16 random bytes in base64url without
 * padding (22 characters), never starting with "-" (it would parse as a command-line option).
 */
export function clusterId(): string {
  let id: string
  do id = randomBytes(16).toString('base64url')
  while (id.startsWith('-'))
  return id
}

/**
 * A `sh` that waits on a pipe from this process: when this process dies, even by SIGKILL, the
 * pipe closes, and the watchdog stops the broker and removes its folder. In its own process
 * group, so the Ctrl-C that kills this process does not kill the watchdog first.
 */
function startWatchdog(pid: number, work: string): ChildProcess {
  const script = 'read -r _; kill -TERM "$1" 2>/dev/null; n=0; while kill -0 "$1" 2>/dev/null && [ "$n" -lt 30 ]; do sleep 0.5; n=$((n+1)); done; kill -KILL "$1" 2>/dev/null; rm -rf "$2"'
  const watchdog = spawn('sh', ['-c', script, 'kafka-watchdog', String(pid), work], { stdio: ['pipe', 'ignore', 'ignore'], detached: true })
  watchdog.on('error', () => {})
  watchdog.unref()
  ;(watchdog.stdin as unknown as Socket).unref()
  return watchdog
}

/** The java to run: $JAVA_HOME/bin/java when set (as Kafka's scripts do), else java on the PATH. */
function javaCommand(): string {
  const home = process.env['JAVA_HOME']
  if (home && isExecutable(join(home, 'bin', 'java'))) return join(home, 'bin', 'java')
  const java = findOnPath('java')
  if (java === undefined) throw new Error('Java 17 or newer is needed to run the Kafka broker and is not on the PATH: apt-get install openjdk-17-jre-headless')
  return java
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, name))) return join(dir, name)
  }
  return undefined
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

function readKafkaVersion(): string {
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(pomFile, 'utf8'))
  if (!match) throw new Error(`${pomFile} has no <kafka.version> property`)
  return match[1]!.trim()
}

// Changing pom.xml (a new Log4j, say) without changing the Kafka version must still refetch.
function pomFingerprint(): string {
  return `# pom.xml sha256 ${createHash('sha256').update(readFileSync(pomFile)).digest('hex')}`
}

function isComplete(dir: string, fingerprint: string): boolean {
  const marker = join(dir, markerName)
  if (!existsSync(marker)) return false
  const [first, ...jars] = readFileSync(marker, 'utf8').split('\n').filter((line) => line !== '')
  return first === fingerprint && jars.length > 0 && jars.every((jar) => existsSync(join(dir, jar)))
}

function jarsIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.jar')).sort() : []
}

/** Runs a command to its end, keeping the tail of its stdout and stderr together. */
function run(command: string, args: string[]): Promise<{ code: number | string; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    const output = new OutputTail(logLimit)
    child.stdout.on('data', (chunk: Buffer) => output.add(chunk))
    child.stderr.on('data', (chunk: Buffer) => output.add(chunk))
    child.once('error', (error) => resolve({ code: error.message, output: output.text() }))
    child.once('close', (code, signal) => resolve({ code: code ?? signal ?? -1, output: output.text() }))
  })
}

/** The last `limit` characters of a process's output, optionally copied to a stream as they come. */
class OutputTail {
  #text = ''
  constructor(
    private readonly limit: number,
    private readonly echo?: NodeJS.WritableStream,
  ) {}

  add(chunk: Buffer): void {
    this.echo?.write(chunk)
    this.#text += chunk.toString()
    if (this.#text.length > this.limit * 2) this.#text = this.#text.slice(-this.limit)
  }

  text(): string {
    return this.#text.slice(-this.limit)
  }
}

function exitOf(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))
    child.once('error', () => resolve(-1))
  })
}

/** `count` distinct ports that were free on 127.0.0.1 a moment ago (held open together, so distinct). */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    const ports: number[] = []
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject)
          server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
        }),
      )
    }
    return ports
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

function rssMiB(pid: number): string {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? `${(Number(match[1]) / 1024).toFixed(0)} MiB` : 'unknown'
  } catch {
    return 'unknown'
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

function progress(quiet = false): (message: string) => void {
  return (message) => {
    if (!quiet) process.stderr.write(`${message}\n`)
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const usage = `Usage: npm run kafka -- <command> [options]   (or: node --import tsx scripts/kafka/broker.ts …)

A real Apache Kafka ${kafkaVersion} broker (KRaft, one node) from Maven Central jars.

Commands:
  fetch                 download the jars into .cache/kafka/${kafkaVersion}/jars (once) and print that folder
  start                 start a broker, print KAFKA_BOOTSTRAP=127.0.0.1:PORT, run until Ctrl-C

Options for start:
  --partitions N        partitions of auto-created topics (default 1)
  --log-dir DIR         keep the data in DIR across runs instead of a fresh temp folder
  --quiet               no progress lines (the broker's warnings are still shown)

Needs Java 17+ (apt-get install openjdk-17-jre-headless) and, for the first fetch, Maven (apt-get install maven).`

/** The command line: resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${usage}\n`)
    return 0
  }
  let flags: { partitions?: string; 'log-dir'?: string; quiet?: boolean }
  try {
    flags = parseArgs({
      args: rest,
      options: { partitions: { type: 'string' }, 'log-dir': { type: 'string' }, quiet: { type: 'boolean' } },
      allowPositionals: false,
    }).values
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}\n`)
    return 2
  }
  if (command === 'fetch') {
    if (Object.keys(flags).length > 0) {
      process.stderr.write(`fetch takes no options\n\n${usage}\n`)
      return 2
    }
    process.stdout.write(`${await fetchKafkaJars()}\n`)
    return 0
  }
  if (command === 'start') {
    const partitions = flags.partitions === undefined ? undefined : Number(flags.partitions)
    if (partitions !== undefined && !(Number.isInteger(partitions) && partitions > 0)) {
      process.stderr.write(`--partitions must be a positive integer, not ${JSON.stringify(flags.partitions)}\n`)
      return 2
    }
    return serve({ partitions, logDir: flags['log-dir'], quiet: flags.quiet, echo: true })
  }
  process.stderr.write(`${command === undefined ? 'no command given' : `unknown command ${JSON.stringify(command)}`}\n\n${usage}\n`)
  return 2
}

async function serve(options: KafkaOptions): Promise<number> {
  const kafka = await startKafka(options)
  process.stdout.write(`KAFKA_BOOTSTRAP=${kafka.bootstrap}\n`)
  // startKafka does not hold the event loop open (so tests end); the foreground command must.
  const keepAlive = setInterval(() => {}, 1 << 30)
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  const ended = await Promise.race([signalled, kafka.exited.then((code) => ({ code }))])
  clearInterval(keepAlive)
  if (typeof ended === 'object') {
    process.stderr.write(`the broker exited on its own (${ended.code})\n`)
    await kafka.stop()
    return 1
  }
  process.stderr.write(`${ended}: stopping the broker…\n`)
  await kafka.stop()
  return 0
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: Error) => {
      process.stderr.write(`${error.message}\n`)
      process.exitCode = 1
    },
  )
}
