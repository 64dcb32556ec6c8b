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
 * startKafkaCluster starts several such nodes as one cluster, for tests of replication and
 * failover (kill a node, watch leadership move, start it again).
 *
 * Run directly it is a small CLI (`fetch`, `start`): see `usage` below.
 * The Kafka version is set in pom.xml beside this file, and only there.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { delimiter, join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Admin } from '@platformatic/kafka'

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
  /**
   * Tell clients (in `advertised.listeners`) to connect to this port on 127.0.0.1 instead of the
   * listener's own, e.g. a proxy in front of the broker: clients connect to what metadata
   * advertises, not to the bootstrap address. `bootstrap` and the readiness check keep the listener.
   */
  advertisedPort?: number
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
  return withFreePorts(options.ports !== undefined, () => launch(java, jars, options))
}

export interface ClusterOptions {
  /** How many nodes, each broker and controller (default 3). */
  brokers?: number
  /** `num.partitions`: how many partitions an auto-created topic gets (default 3). */
  partitions?: number
  /** `default.replication.factor` of new topics (default: every broker). */
  replicationFactor?: number
  /** `min.insync.replicas` (default 2, or fewer if there are fewer replicas). */
  minInsyncReplicas?: number
  /** No progress lines on stderr. */
  quiet?: boolean
  /** Copy the nodes' own output (warnings, errors) to stderr, each line prefixed `[kafka-<id>]`. */
  echo?: boolean
  /** How long to wait for the nodes to serve, at start and at each restart (default 90 s). */
  readyTimeoutMs?: number
  /** Where the jars are or go (see fetchKafkaJars). */
  jarsDir?: string
  /**
   * Scheduling niceness of the nodes' JVMs (0 to 19; default 0). Where the nodes share a
   * machine's cores with what is measured (the failover test and benchmark), a node starting
   * (class loading, JIT, log recovery) takes every core for seconds; at 10 the measured processes
   * keep most of the CPU, as if the brokers had machines of their own.
   */
  nice?: number
}

/** One node of a KafkaCluster: a JVM that is broker and controller, which a test can kill and restart. */
export interface KafkaNode {
  /** Its `node.id`, 1 to n. */
  id: number
  /** Its PLAINTEXT listener as host:port, e.g. "127.0.0.1:40123". */
  bootstrap: string
  /** Its client and controller ports; a restart keeps them. */
  ports: { port: number; controllerPort: number }
  /** The JVM's process id while it runs. */
  readonly pid: number | undefined
  /** Whether the JVM runs (it may not serve yet, or any more). */
  readonly running: boolean
  /**
   * Stops the JVM and resolves once it has exited. SIGTERM (the default, like process.kill) is a
   * controlled shutdown that hands its partition leaderships over first, escalated to SIGKILL
   * after 15 s; SIGKILL is a crash, found out only when its heartbeats stop. Keeps its data.
   */
  kill(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>
  /** Starts it again (same ports, same data) and resolves once it serves and every running node lists it. No-op while it runs. */
  start(): Promise<void>
  /** Its output so far (the last 256 KiB, across restarts). */
  logs(): string
}

export interface KafkaCluster {
  /** Every node's host:port, comma-separated, e.g. "127.0.0.1:40123,127.0.0.1:40125,127.0.0.1:40127". */
  bootstrap: string
  /** Every node's host:port, for `bootstrapBrokers`. */
  brokers: string[]
  nodes: KafkaNode[]
  /** The node with this node.id; throws for an unknown one. */
  node(id: number): KafkaNode
  /** SIGKILLs every node (their data is thrown away, so there is nothing to shut down cleanly) and removes the temp folder. Safe to call twice. */
  stop(): Promise<void>
}

/**
 * Starts a Kafka cluster on 127.0.0.1, every node broker and controller (a static quorum of all
 * of them), tuned to fail over within seconds, and resolves once every node serves and lists
 * every other. Fetches the jars first if needed. The nodes die with this process, like startKafka's.
 *
 *   const kafka = await startKafkaCluster({ brokers: 3 })
 *   const producer = new Producer({ clientId: 'test', bootstrapBrokers: kafka.brokers, acks: ProduceAcks.ALL })
 *   await kafka.node(2).kill('SIGKILL')
 *   …
 *   await kafka.node(2).start()
 *   await kafka.stop()
 */
export async function startKafkaCluster(options: ClusterOptions = {}): Promise<KafkaCluster> {
  const brokers = options.brokers ?? 3
  const replicationFactor = options.replicationFactor ?? brokers
  const settings = {
    brokers,
    partitions: options.partitions ?? 3,
    replicationFactor,
    minInsyncReplicas: options.minInsyncReplicas ?? Math.min(2, replicationFactor),
    nice: options.nice ?? 0,
  }
  if (!Number.isInteger(settings.nice) || settings.nice < 0 || settings.nice > 19) throw new Error(`startKafkaCluster: nice must be an integer from 0 to 19, not ${settings.nice}`)
  const check = (name: keyof typeof settings, max: number) => {
    const value = settings[name]
    if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`startKafkaCluster: ${name} must be an integer from 1 to ${max}, not ${value}`)
  }
  check('brokers', 9)
  check('partitions', 10_000)
  check('replicationFactor', brokers)
  check('minInsyncReplicas', replicationFactor)
  const java = javaCommand()
  const jars = await fetchKafkaJars({ dir: options.jarsDir, quiet: options.quiet })
  return withFreePorts(false, () => launchCluster(java, jars, settings, options))
}

class PortTakenError extends Error {}

// Free ports can be taken by someone else before the JVM binds them: pick new ones and retry.
async function withFreePorts<T>(fixedPorts: boolean, attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt()
    } catch (error) {
      if (!(error instanceof PortTakenError) || n === 3 || fixedPorts) throw error
    }
  }
}

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
  const work = tempFolder('eventplane-kafka-')
  const [port, controllerPort] = options.ports === undefined ? await freePorts(2) : [options.ports.port, options.ports.controllerPort]
  const config = join(work.path, 'server.properties')
  const dataDir = options.logDir ?? join(work.path, 'data')
  writeFileSync(
    config,
    serverProperties({
      nodeId: 1,
      port: port!,
      controllerPort: controllerPort!,
      voters: [{ id: 1, controllerPort: controllerPort! }],
      dataDir,
      partitions: options.partitions ?? 1,
      sasl: options.sasl,
      advertisedPort: options.advertisedPort,
    }),
  )
  // A kept data folder is formatted once; later starts reuse it (and its cluster id) as it is.
  if (!(options.logDir !== undefined && existsSync(join(options.logDir, 'meta.properties')))) {
    try {
      await formatStorage(java, jars, config, clusterId())
    } catch (error) {
      work.remove()
      throw error
    }
  }
  const formatSeconds = (Date.now() - started) / 1000

  say(`starting Kafka ${kafkaVersion} on 127.0.0.1:${port}…`)
  const output = new OutputTail(logLimit, options.echo ? process.stderr : undefined)
  const jvm = spawnKafka(java, jars, { config, work: work.path, jvm: ['-Xms256m', '-Xmx512m'], output })
  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      await jvm.kill('SIGTERM')
      work.remove()
    })())
  try {
    await untilServing(jvm, port!, Date.now() + (options.readyTimeoutMs ?? readyTimeoutMs), 'the broker', started)
  } catch (error) {
    await stop()
    throw error
  }
  say(`Kafka ${kafkaVersion} ready on 127.0.0.1:${port} in ${((Date.now() - started) / 1000).toFixed(1)} s (format ${formatSeconds.toFixed(1)} s), pid ${jvm.pid}, RSS ${rssMiB(jvm.pid!)}`)
  return { bootstrap: `127.0.0.1:${port}`, pid: jvm.pid!, version: kafkaVersion, ports: { port: port!, controllerPort: controllerPort! }, logs: () => output.text(), exited: jvm.exited, stop }
}

async function launchCluster(
  java: string,
  jars: string,
  settings: { brokers: number; partitions: number; replicationFactor: number; minInsyncReplicas: number; nice: number },
  options: ClusterOptions,
): Promise<KafkaCluster> {
  const say = progress(options.quiet)
  const started = Date.now()
  const timeoutMs = options.readyTimeoutMs ?? readyTimeoutMs
  // One folder holds every node's, so that any node's watchdog can remove all of it.
  const work = tempFolder('eventplane-kafka-cluster-')
  const ports = await freePorts(2 * settings.brokers)
  const members = Array.from({ length: settings.brokers }, (_, i) => {
    const id = i + 1
    const dir = join(work.path, `node-${id}`)
    mkdirSync(dir)
    return { id, port: ports[2 * i]!, controllerPort: ports[2 * i + 1]!, config: join(dir, 'server.properties'), dataDir: join(dir, 'data') }
  })
  const voters = members.map(({ id, controllerPort }) => ({ id, controllerPort }))
  for (const m of members) {
    writeFileSync(
      m.config,
      serverProperties({
        nodeId: m.id,
        port: m.port,
        controllerPort: m.controllerPort,
        voters,
        dataDir: m.dataDir,
        partitions: settings.partitions,
        replicationFactor: settings.replicationFactor,
        minInsyncReplicas: settings.minInsyncReplicas,
      }),
    )
  }
  const id = clusterId()
  try {
    await Promise.all(members.map((m) => formatStorage(java, jars, m.config, id)))
  } catch (error) {
    work.remove()
    throw error
  }
  const formatSeconds = (Date.now() - started) / 1000

  let stopped = false
  const launchers = members.map((m) => {
    const output = new OutputTail(logLimit, options.echo ? process.stderr : undefined, `[kafka-${m.id}] `)
    let jvm: KafkaProcess | undefined
    let starting: Promise<void> | undefined
    const spawnNode = () => {
      // Three JVMs share the machine: half the single broker's initial heap (same maximum), and
      // C1 only, whose quick compiles start a 3-node cluster on 2 busy cores in ~9 s instead of ~13 s
      // and leave more CPU to heartbeats; a test cluster carries little traffic.
      jvm = spawnKafka(java, jars, { config: m.config, work: work.path, jvm: ['-Xms128m', '-Xmx512m', '-XX:TieredStopAtLevel=1'], output, nice: settings.nice })
      return jvm
    }
    const node: KafkaNode = {
      id: m.id,
      bootstrap: `127.0.0.1:${m.port}`,
      ports: { port: m.port, controllerPort: m.controllerPort },
      get pid() {
        return jvm?.running ? jvm.pid : undefined
      },
      get running() {
        return jvm?.running ?? false
      },
      kill: async (signal = 'SIGTERM') => {
        await jvm?.kill(signal)
      },
      start: () =>
        (starting ??= (async () => {
          if (stopped) throw new Error(`node ${m.id}: the cluster is stopped`)
          if (jvm?.running) return
          const since = Date.now()
          output.add(Buffer.from(`--- eventplane: node ${m.id} starts again ---\n`))
          const started = spawnNode()
          try {
            await untilServing(started, m.port, since + timeoutMs, `node ${m.id}`, since)
            await untilListed(cluster.nodes, since + timeoutMs, since)
          } catch (error) {
            await started.kill('SIGKILL')
            throw error
          }
        })().finally(() => (starting = undefined))),
      logs: () => output.text(),
    }
    const launch = (since: number) => untilServing(spawnNode(), m.port, since + timeoutMs, `node ${m.id}`, since)
    return { node, launch }
  })
  const nodes = launchers.map((l) => l.node)
  let stopping: Promise<void> | undefined
  const cluster: KafkaCluster = {
    bootstrap: nodes.map((n) => n.bootstrap).join(','),
    brokers: nodes.map((n) => n.bootstrap),
    nodes,
    node: (id) => {
      const node = nodes[id - 1]
      if (node === undefined) throw new Error(`no Kafka node ${id}: the cluster has nodes 1 to ${nodes.length}`)
      return node
    },
    stop: () =>
      (stopping ??= (async () => {
        stopped = true
        await Promise.all(nodes.map((n) => n.kill('SIGKILL')))
        work.remove()
      })()),
  }

  say(`starting a Kafka ${kafkaVersion} cluster of ${settings.brokers} on ${cluster.bootstrap}…`)
  try {
    // Each node opens its client port once it is unfenced, which needs a quorum with a leader;
    // the metadata check then waits until every node has heard of every other.
    const since = Date.now()
    await Promise.all(launchers.map((l) => l.launch(since)))
    await untilListed(nodes, since + timeoutMs, since)
  } catch (error) {
    await cluster.stop()
    throw error
  }
  const rss = nodes.map((n) => rssMiB(n.pid!)).join(', ')
  say(`Kafka ${kafkaVersion} cluster ready in ${((Date.now() - started) / 1000).toFixed(1)} s (format ${formatSeconds.toFixed(1)} s), pids ${nodes.map((n) => n.pid).join(', ')}, RSS ${rss}`)
  return cluster
}

/** A temp folder, removed on this process's normal exit at the latest. */
function tempFolder(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  const remove = () => {
    process.off('exit', remove)
    rmSync(path, { recursive: true, force: true })
  }
  process.once('exit', remove)
  return { path, remove }
}

/** `kafka.tools.StorageTool format`: writes meta.properties (node id, cluster id) and the bootstrap metadata into log.dirs. */
async function formatStorage(java: string, jars: string, config: string, clusterId: string): Promise<void> {
  // StorageTool calls System.exit, so it gets a JVM of its own; a short-lived one, hence the
  // small heap and the C1-only compiler. A static quorum (controller.quorum.voters) needs no
  // --standalone or --initial-controllers; Kafka refuses them together.
  const format = await run(java, [
    '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', ...jvmLogging, '-cp', join(jars, '*'),
    'kafka.tools.StorageTool', 'format', '--config', config, '--cluster-id', clusterId,
  ])
  if (format.code !== 0) throw new Error(`kafka.tools.StorageTool format failed (exit ${format.code}):\n${tail(format.output, 20)}`)
}

const jvmLogging = [`-Dlog4j2.configurationFile=${log4jConfig}`, '-Djava.awt.headless=true']

/** One Kafka JVM (kafka.Kafka), killed with this process. */
interface KafkaProcess {
  pid: number | undefined
  readonly running: boolean
  /** Resolves with the exit code (or signal) when the JVM exits, for whatever reason. */
  exited: Promise<number | string>
  /** Its output so far (for a cluster node, across restarts). */
  logs(): string
  /** Why it will never serve (it could not be run, or it exited), else undefined. */
  failure(what: string): string | undefined
  /** Resolves once the JVM has exited; a SIGTERM becomes a SIGKILL after 15 s. */
  kill(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>
}

/** `jvm`: heap and compiler options. */
function spawnKafka(java: string, jars: string, o: { config: string; work: string; jvm: string[]; output: OutputTail; nice?: number }): KafkaProcess {
  // The wildcard classpath reaches java as it is (no shell): java expands `dir/*` to its jars.
  // Detached (its own process group), so a Ctrl-C meant for this process reaches the broker only
  // through stop() or the watchdog, never twice.
  // Under nice(1), which execs java: the pid is the JVM's, and every JVM thread inherits the niceness.
  const niced = o.nice === undefined || o.nice === 0 ? [] : ['nice', '-n', String(o.nice)]
  const child = spawn(niced[0] ?? java, [
    ...niced.slice(1), ...(niced.length > 0 ? [java] : []), ...o.jvm, '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:+ExitOnOutOfMemoryError', ...jvmLogging,
    '-cp', join(jars, '*'), 'kafka.Kafka', o.config,
  ], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  if (niced.length > 0 && child.pid !== undefined) lowerAutogroup(child.pid, o.nice!)
  child.stdout!.on('data', (chunk: Buffer) => o.output.add(chunk))
  child.stderr!.on('data', (chunk: Buffer) => o.output.add(chunk))
  let spawnError: Error | undefined
  child.once('error', (error) => (spawnError = error))
  const exited = exitOf(child)

  // Neither the JVM nor its pipes keep this process alive: a test that forgets stop() still ends,
  // and then the exit hook below kills the broker.
  child.unref()
  ;(child.stdout as Socket).unref()
  ;(child.stderr as Socket).unref()
  const watchdog = child.pid === undefined ? undefined : startWatchdog(child.pid, o.work)
  const onExit = () => {
    watchdog?.kill('SIGKILL')
    child.kill('SIGKILL')
  }
  // First among the exit hooks: the JVM dies before its folder is removed, not while.
  process.prependOnceListener('exit', onExit)
  // Once the JVM is gone its pid may be reused: the watchdog must not signal it any more.
  void exited.then(() => {
    watchdog?.kill('SIGKILL')
    process.off('exit', onExit)
  })
  const running = () => spawnError === undefined && child.exitCode === null && child.signalCode === null
  return {
    pid: child.pid,
    get running() {
      return running()
    },
    exited,
    logs: () => o.output.text(),
    failure: (what) =>
      spawnError !== undefined ? `could not run ${java}: ${spawnError.message}`
      : !running() ? `${what} exited (${child.exitCode ?? child.signalCode}) before it was ready`
      : undefined,
    kill: async (signal) => {
      watchdog?.kill('SIGKILL')
      if (!running()) return
      child.kill(signal)
      // The JVM and its pipes are unref'd: without a timer of its own, this process could end
      // while it waits. A SIGTERM becomes a SIGKILL after the grace; a SIGKILL is sent again.
      const timer = setTimeout(() => child.kill('SIGKILL'), signal === 'SIGTERM' ? stopGraceMs : 1000)
      await exited
      clearTimeout(timer)
    },
  }
}

/**
 * A detached child leads a session of its own, and where the kernel groups CPU time by session
 * (sched_autogroup, on by default in Debian), each session gets an equal share whatever its
 * processes' nice values: the group's own niceness (/proc/PID/autogroup) is what lowers it.
 * Without autogroup the file is absent and nice(1) alone does it.
 */
function lowerAutogroup(pid: number, nice: number): void {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice))
  } catch {
    // no autogroup (or no /proc): nothing to lower
  }
}

/**
 * Resolves once the JVM accepts connections on `port`. The listener socket opens only once the
 * broker is unfenced (SocketServer defers it so that "port open" means ready), so a TCP connect
 * is the readiness check. Throws PortTakenError if it could not bind its ports.
 */
async function untilServing(jvm: KafkaProcess, port: number, deadline: number, what: string, since: number): Promise<void> {
  while (!(await canConnect(port))) {
    const failure = jvm.failure(what) ?? (Date.now() > deadline ? `${what} was not ready after ${((Date.now() - since) / 1000).toFixed(0)} s` : undefined)
    if (failure !== undefined) {
      // After exited, so that the output has all the JVM wrote.
      if (!jvm.running) await jvm.exited
      const logs = jvm.logs()
      if (/Address already in use/.test(logs)) throw new PortTakenError(`${what}: port ${port} or its controller port was taken`)
      throw new Error(`Kafka ${kafkaVersion}: ${failure}. Last lines of its output:\n${tail(logs, 30) || '(none)'}`)
    }
    await sleep(200)
  }
}

/**
 * Resolves once every running node answers a metadata request listing every running node, i.e.
 * the quorum has a leader and each broker is registered, unfenced and known to all the others.
 */
async function untilListed(nodes: KafkaNode[], deadline: number, since: number): Promise<void> {
  for (;;) {
    const running = nodes.filter((n) => n.running)
    const seen = await Promise.all(running.map((n) => aliveBrokers(n.bootstrap)))
    const missing = running.flatMap((n, i) => running.filter((m) => !seen[i]?.includes(m.id)).map((m) => `node ${n.id} does not list node ${m.id}`))
    if (seen.every((ids) => ids !== undefined) && missing.length === 0) return
    if (Date.now() > deadline) {
      const silent = running.filter((_, i) => seen[i] === undefined).map((n) => `node ${n.id} does not answer`)
      throw new Error(`Kafka ${kafkaVersion}: the cluster did not form after ${((Date.now() - since) / 1000).toFixed(0)} s: ${[...silent, ...missing].join('; ')}`)
    }
    await sleep(250)
  }
}

/** The node ids of the brokers `bootstrap` lists in its metadata (registered and unfenced), or undefined if it does not answer. */
async function aliveBrokers(bootstrap: string): Promise<number[] | undefined> {
  const admin = new Admin({ clientId: 'eventplane-kafka-ready', bootstrapBrokers: [bootstrap], retries: 0, timeout: 3000, connectTimeout: 2000 })
  try {
    const metadata = await admin.metadata({ topics: [], forceUpdate: true })
    return [...metadata.brokers.keys()]
  } catch {
    return undefined
  } finally {
    await admin.close().catch(() => {})
  }
}

/**
 * server.properties for one node that is broker and controller, with a static quorum (so the
 * format step needs no --standalone). A single node keeps every internal topic at one replica
 * and Kafka's timeouts; a cluster replicates them to every node and fails over within seconds.
 */
function serverProperties(o: {
  nodeId: number
  port: number
  controllerPort: number
  /** Every node of the quorum (all of them: each node is also a controller). */
  voters: Array<{ id: number; controllerPort: number }>
  dataDir: string
  partitions: number
  replicationFactor?: number
  minInsyncReplicas?: number
  sasl?: KafkaOptions['sasl']
  advertisedPort?: number
}): string {
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
  const nodes = o.voters.length
  const minIsr = o.minInsyncReplicas ?? 1
  // Kafka's defaults take 9 s to fence a crashed broker (and 30 s to drop a stalled follower from
  // the ISR); a test wants a failover it can wait for. A controller crash first costs a quorum
  // election, within controller.quorum.fetch.timeout.ms (2 s) plus election.timeout.ms (1 s).
  const failover =
    nodes === 1
      ? []
      : [
          'broker.heartbeat.interval.ms=500',
          'broker.session.timeout.ms=3000',
          // Not lower: three JVMs on two cores see GC and JIT pauses, and a follower must not
          // flap in and out of the ISR.
          'replica.lag.time.max.ms=5000',
          // The default, said out loud: acks=all must never lose a record to a stale leader.
          'unclean.leader.election.enable=false',
          // A SIGTERM is a controlled shutdown (the default): leaderships move before the node goes.
        ]
  return `${[
    'process.roles=broker,controller',
    `node.id=${o.nodeId}`,
    `controller.quorum.voters=${o.voters.map((v) => `${v.id}@127.0.0.1:${v.controllerPort}`).join(',')}`,
    `listeners=${listener}://127.0.0.1:${o.port},CONTROLLER://127.0.0.1:${o.controllerPort}`,
    `advertised.listeners=${listener}://127.0.0.1:${o.advertisedPort ?? o.port}`,
    'controller.listener.names=CONTROLLER',
    `inter.broker.listener.name=${listener}`,
    `listener.security.protocol.map=CONTROLLER:PLAINTEXT,${listener}:${listener}`,
    ...sasl,
    `log.dirs=${o.dataDir}`,
    `num.partitions=${o.partitions}`,
    `default.replication.factor=${o.replicationFactor ?? 1}`,
    `min.insync.replicas=${minIsr}`,
    'auto.create.topics.enable=true',
    // Internal topics live on every node, whatever new topics get.
    `offsets.topic.replication.factor=${nodes}`,
    'offsets.topic.num.partitions=1',
    `transaction.state.log.replication.factor=${nodes}`,
    `transaction.state.log.min.isr=${minIsr}`,
    'transaction.state.log.num.partitions=1',
    `share.coordinator.state.topic.replication.factor=${nodes}`,
    `share.coordinator.state.topic.min.isr=${minIsr}`,
    // Default 3000: every first consumer-group join would wait 3 s.
    'group.initial.rebalance.delay.ms=0',
    ...failover,
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

/**
 * The last `limit` characters of a process's output, optionally copied to a stream as they come
 * (each line after `prefix`, so that several nodes' output can share a terminal).
 */
class OutputTail {
  #text = ''
  #lineStart = true
  constructor(
    private readonly limit: number,
    private readonly echo?: NodeJS.WritableStream,
    private readonly prefix = '',
  ) {}

  add(chunk: Buffer): void {
    const text = chunk.toString()
    if (this.echo !== undefined) {
      this.echo.write(this.prefix === '' ? text : `${this.#lineStart ? this.prefix : ''}${text.replace(/\n(?=.)/gs, `\n${this.prefix}`)}`)
      this.#lineStart = text.endsWith('\n')
    }
    this.#text += text
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

A real Apache Kafka ${kafkaVersion} broker (KRaft, one node) or cluster from Maven Central jars.

Commands:
  fetch                 download the jars into .cache/kafka/${kafkaVersion}/jars (once) and print that folder
  start                 start a broker, print KAFKA_BOOTSTRAP=127.0.0.1:PORT, run until Ctrl-C;
                        with --brokers N a cluster: KAFKA_BOOTSTRAP=127.0.0.1:PORT1,127.0.0.1:PORT2,…

Options for start:
  --brokers N           a cluster of N nodes, each broker and controller, topics replicated to
                        all of them, min.insync.replicas 2, failover within seconds
  --partitions N        partitions of auto-created topics (default 1; 3 with --brokers)
  --log-dir DIR         keep the data in DIR across runs instead of a fresh temp folder (one node only)
  --quiet               no progress lines (the brokers' warnings are still shown)

Needs Java 17+ (apt-get install openjdk-17-jre-headless) and, for the first fetch, Maven (apt-get install maven).`

/** The command line: resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${usage}\n`)
    return 0
  }
  let flags: { brokers?: string; partitions?: string; 'log-dir'?: string; quiet?: boolean }
  try {
    flags = parseArgs({
      args: rest,
      options: { brokers: { type: 'string' }, partitions: { type: 'string' }, 'log-dir': { type: 'string' }, quiet: { type: 'boolean' } },
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
    const count = (flag: 'brokers' | 'partitions', max: number) => {
      const text = flags[flag]
      if (text === undefined) return undefined
      const value = Number(text)
      if (!(Number.isInteger(value) && value > 0 && value <= max)) {
        process.stderr.write(`--${flag} must be a positive integer${max < Infinity ? ` up to ${max}` : ''}, not ${JSON.stringify(text)}\n`)
        return null
      }
      return value
    }
    const partitions = count('partitions', Infinity)
    const brokers = count('brokers', 9)
    if (partitions === null || brokers === null) return 2
    if (brokers === undefined) return serve(await startKafka({ partitions, logDir: flags['log-dir'], quiet: flags.quiet, echo: true }))
    if (flags['log-dir'] !== undefined) {
      process.stderr.write('--log-dir keeps one broker\'s data; a cluster (--brokers) always starts fresh\n')
      return 2
    }
    return serve(await startKafkaCluster({ brokers, partitions, quiet: flags.quiet, echo: true }))
  }
  process.stderr.write(`${command === undefined ? 'no command given' : `unknown command ${JSON.stringify(command)}`}\n\n${usage}\n`)
  return 2
}

/** Runs until Ctrl-C (or SIGTERM), or until a broker exits on its own. */
async function serve(kafka: KafkaBroker | KafkaCluster): Promise<number> {
  process.stdout.write(`KAFKA_BOOTSTRAP=${kafka.bootstrap}\n`)
  // startKafka does not hold the event loop open (so tests end); the foreground command must.
  const keepAlive = setInterval(() => {}, 1 << 30)
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  let watch: NodeJS.Timeout | undefined
  const died =
    'exited' in kafka
      ? kafka.exited.then((code) => ({ problem: `the broker exited on its own (${code})` }))
      : new Promise<{ problem: string }>((resolve) => {
          // Nothing here kills a node, so a node that stops running stopped on its own.
          watch = setInterval(() => {
            const dead = kafka.nodes.find((n) => !n.running)
            if (dead !== undefined) resolve({ problem: `node ${dead.id} exited on its own` })
          }, 500)
        })
  const ended = await Promise.race([signalled, died])
  clearInterval(keepAlive)
  clearInterval(watch)
  if (typeof ended === 'object') {
    process.stderr.write(`${ended.problem}\n`)
    await kafka.stop()
    return 1
  }
  process.stderr.write(`${ended}: stopping Kafka…\n`)
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
