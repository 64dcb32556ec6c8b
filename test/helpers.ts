import { chmodSync, cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn } from 'node:child_process'
import { Writable } from 'node:stream'
import { stringify } from 'yaml'
import type { Logger } from 'pino'
import { runCli } from '../src/cli/main.ts'
import type { RunningServer } from '../src/server/index.ts'

export const repoRoot = fileURLToPath(new URL('..', import.meta.url))

/** `--import` this to run TypeScript with tsx from any working folder (a bare `tsx` is found from the working folder only). */
export const tsxImport = import.meta.resolve('tsx')

/** Wikimedia's primary schema repository, kept beside the project in ../shared (also in CI). */
export const fixtureRepo = fileURLToPath(new URL('../../shared/fixtures/wmf-schemas-primary', import.meta.url))
/**
 * Why the suites that read the fixture are skipped, or undefined when it is there. Outside CI,
 * without ../shared, scripts/test.mjs says loudly which suites skip; in CI it fails the run.
 */
export const fixtureSkipped = existsSync(fixtureRepo)
  ? undefined
  : "skipped: no ../shared/fixtures/wmf-schemas-primary (Wikimedia's primary schema repository) beside the clone; see README, Tests"
export const bundledSchemas = join(repoRoot, 'defaults', 'schemas')
/** The bundled stream config, what `npm start` serves. */
export const bundledStreams = join(repoRoot, 'defaults', 'streams.yaml')

/**
 * Writes `<dir>/eventplane.yaml`: data in `<dir>/data`, the bundled schemas and stream config
 * (as `npm start`), then `settings` on top (top-level keys replace); returns its path.
 */
export function writeBundledConfig(dir: string, settings: Record<string, unknown> = {}): string {
  const file = join(dir, 'eventplane.yaml')
  writeFileSync(
    file,
    stringify({
      data_dir: join(dir, 'data'),
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: bundledStreams, watch: false },
      ...settings,
    }),
  )
  return file
}

/**
 * A server in a new temporary folder, on writeBundledConfig's config with `settings` on top
 * (port 0 unless they set one); silent unless given a logger.
 */
export async function serveBundled(settings: Record<string, unknown> = {}, logger?: Logger): Promise<RunningServer> {
  const dir = tempDir()
  const file = writeBundledConfig(dir, { ...settings, server: { port: 0, ...((settings['server'] as object | undefined) ?? {}) } })
  // Loaded here: most test files start no server.
  const [{ loadConfig }, { startServer }, { pino }] = await Promise.all([import('../src/config/index.ts'), import('../src/server/index.ts'), import('pino')])
  return startServer(loadConfig({ path: file, env: {}, cwd: dir }).config, { logger: logger ?? pino({ level: 'silent' }) })
}

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = 'eventplane-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A writable copy of a folder (the fixture is read-only). */
export function writableCopy(source: string): string {
  const target = join(tempDir(), 'copy')
  cpSync(source, target, { recursive: true, verbatimSymlinks: true })
  makeWritable(target)
  return target
}

function makeWritable(path: string): void {
  const info = lstatSync(path)
  if (info.isSymbolicLink()) return
  chmodSync(path, info.isDirectory() ? 0o755 : 0o644)
  if (info.isDirectory()) for (const entry of readdirSync(path)) makeWritable(join(path, entry))
}

export class Capture extends Writable {
  text = ''
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.text += chunk.toString()
    callback()
  }
}

/**
 * Starts `eventplane serve --port 0 ARGS` as its own process (so it can be signalled or
 * killed) and waits, at most 60 s (a start on a loaded machine, on Kafka, takes more than 20), until it prints where it listens.
 * `wrap` runs the command through another (say `unshare … sh -c '… exec "$@"'`); a wrapper that
 * execs keeps the pid, so `child.pid` is still the server's.
 */
export async function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}, options: { wrap?: (command: string[]) => string[] } = {}) {
  const command = [process.execPath, '--import', 'tsx', join(repoRoot, 'src/cli/bin.ts'), 'serve', '--port', '0', ...args]
  const [file, ...argv] = options.wrap?.(command) ?? command
  const child = spawn(file!, argv, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const deadline = Date.now() + 60_000
  while (!/listening on (http:\/\/\S+)/.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return { child, url: /listening on (http:\/\/\S+)/.exec(output)![1]!, output: () => output }
}

/** Runs the CLI in-process and captures its output. */
export async function cli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const stdout = new Capture()
  const stderr = new Capture()
  const code = await runCli(args, { stdout, stderr, cwd: options.cwd ?? repoRoot, env: options.env ?? {} })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

/**
 * The `event_log` settings the intake and streams suites run with: the embedded SQLite log, or,
 * when EVENTPLANE_TEST_BACKEND=kafka (the files in test/kafka/ set it), the test broker, each
 * platform in a topic namespace of its own so that it starts from empty topics.
 */
export async function testEventLog(settings: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  if (process.env['EVENTPLANE_TEST_BACKEND'] !== 'kafka') return settings
  const { kafkaBootstrap } = await import('./kafka/broker.ts')
  const namespace = `test-${process.pid}-${++namespaces}-${Math.random().toString(36).slice(2, 8)}.`
  return { ...settings, backend: 'kafka', kafka: { brokers: [await kafkaBootstrap()], topic_namespace: namespace, request_timeout_ms: 5000 } }
}
let namespaces = 0

/** Opens, to read it, the event log a platform with these `event_log` settings (from testEventLog) wrote. */
export async function openWrittenLog(dataDir: string, settings: Record<string, unknown>) {
  const { openKafkaLog, openSqliteLog } = await import('../src/log/index.ts')
  if (settings['backend'] === 'kafka') {
    const kafka = settings['kafka'] as { brokers: string[]; topic_namespace: string }
    return openKafkaLog({ brokers: kafka.brokers, topicNamespace: kafka.topic_namespace, createTopics: false })
  }
  return openSqliteLog({ path: join(dataDir, 'events.sqlite') })
}

export interface CodeBlock {
  lang: string
  code: string
  line: number
}

/** The fenced code blocks of a Markdown file, with their language and first line. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!)
    if (open === null) continue
    const end = lines.findIndex((line, j) => j > i && line.startsWith('```'))
    blocks.push({ lang: open[1]!, code: lines.slice(i + 1, end).join('\n'), line: i + 1 })
    i = end
  }
  return blocks
}
