import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfig } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { configOption, write, type Command } from './command.ts'

export const logTailCommand: Command = {
  path: ['log', 'tail'],
  summary: 'Print the records of a topic of the event log (SQLite or Kafka), and follow new ones.',
  usage: 'eventplane log tail TOPIC [--from-beginning | --offset N | --since TIME] [--partition N] [--no-follow]',
  help: `Reads the event log of the config: the SQLite file (event_log.path, by default
<data_dir>/events.sqlite) directly, also while a server is writing to it, or the Kafka cluster
(event_log.backend: kafka). Give it the config (and environment) the server runs with: a line
on stderr says which log it reads. It prints one record per line on stdout: the event
JSON, or with --meta a JSON object with topic, partition, offset, timestamp, key and value.
Without a start option it starts at the end and prints only new records.
TIME is epoch milliseconds or an ISO-8601 time. Stop with Ctrl-C.

Example: eventplane log tail datacenter1.test.event --from-beginning --no-follow`,
  options: {
    ...configOption,
    'from-beginning': { type: 'boolean', short: 'b', description: 'Start at the earliest record kept.' },
    offset: { type: 'string', short: 'o', value: 'N', description: 'Start at this offset (needs --partition when the topic has several).' },
    since: { type: 'string', short: 's', value: 'TIME', description: 'Start at the first record at or after TIME.' },
    partition: { type: 'string', short: 'p', value: 'N', description: 'Only this partition (default: all).' },
    'no-follow': { type: 'boolean', description: 'Stop at the end instead of waiting for new records.' },
    max: { type: 'string', short: 'n', value: 'N', description: 'Stop after N records.' },
    meta: { type: 'boolean', short: 'm', description: 'Print each record with its position, timestamp and key.' },
    quiet: { type: 'boolean', short: 'q', description: 'No line on stderr saying which log is read.' },
  },
  maxPositionals: 1,
  async run({ values, positionals, stdout, stderr, env, cwd }) {
    const topic = positionals[0]
    if (topic === undefined) throw new EventplaneError('EVP_CLI_USAGE', 'name the topic, e.g. datacenter1.test.event')
    const starts = ['from-beginning', 'offset', 'since'].filter((k) => values[k] !== undefined)
    if (starts.length > 1) throw new EventplaneError('EVP_CLI_USAGE', 'use one of --from-beginning, --offset and --since')
    const integer = (name: string) => {
      const text = values[name] as string | undefined
      if (text === undefined) return undefined
      if (!/^\d+$/.test(text)) throw new EventplaneError('EVP_CLI_USAGE', `--${name} must be a non-negative integer`)
      return Number(text)
    }
    const offset = integer('offset')
    const partition = integer('partition')
    const max = integer('max')
    let since: number | undefined
    if (typeof values['since'] === 'string') {
      since = /^\d+$/.test(values['since']) ? Number(values['since']) : Date.parse(values['since'])
      if (!Number.isFinite(since)) throw new EventplaneError('EVP_CLI_USAGE', `--since ${JSON.stringify(values['since'])} is neither epoch milliseconds nor an ISO-8601 time`)
    }
    const { config, file } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
    const kafka = config.event_log.backend === 'kafka'
    const path = kafka ? `Kafka at ${(config.event_log.kafka.brokers ?? []).join(', ')}` : config.event_log.path!
    if (!kafka && !existsSync(path)) throw new EventplaneError('EVP_LOG_UNAVAILABLE', `no event log at ${path} (has the server run with this config?)`)
    let log
    if (kafka) {
      const [{ openEventLog }, { pino }] = await Promise.all([import('../server/app.ts'), import('pino')])
      // Reading creates nothing: a topic that does not exist is reported below, not made.
      log = await openEventLog({ ...config, event_log: { ...config.event_log, kafka: { ...config.event_log.kafka, create_topics: false } } }, pino({ level: 'silent' }))
    } else {
      // The file alone: a reader runs no retention of its own.
      const { openSqliteLog } = await import('../log/index.ts')
      log = await openSqliteLog({ path })
    }
    const abort = new AbortController()
    const stop = () => abort.abort()
    process.once('SIGINT', stop)
    try {
      if (!(await log.topics()).includes(topic)) throw new EventplaneError('EVP_LOG_INVALID_ARGUMENT', `no topic ${topic} in ${path}; topics: ${(await log.topics()).join(', ') || '(none)'}`)
      const count = await log.partitions(topic)
      if (partition !== undefined && partition >= count) throw new EventplaneError('EVP_LOG_INVALID_ARGUMENT', `${topic} has ${count} partitions (0 to ${count - 1})`)
      if (offset !== undefined && partition === undefined && count > 1) throw new EventplaneError('EVP_CLI_USAGE', '--offset needs --partition: the topic has several')
      const partitions = partition === undefined ? [...Array(count).keys()] : [partition]
      // Which log, said on stderr: the config decides between SQLite and Kafka, and a config
      // other than the server's would read another log without an error.
      if (values['quiet'] !== true) write(stderr, `reading ${topic} (${count} partition${count === 1 ? '' : 's'}) from ${kafka ? path : `the SQLite file ${path}`} (config: ${file})`)
      let printed = 0
      await Promise.all(
        partitions.map(async (p) => {
          const from =
            since !== undefined
              ? { topic, partition: p, timestamp: since }
              : { topic, partition: p, offset: offset ?? (values['from-beginning'] === true ? await log.earliest(topic, p) : await log.latest(topic, p)) }
          for await (const record of log.read(from, { signal: abort.signal, follow: values['no-follow'] !== true })) {
            const value = record.value.toString('utf8')
            write(
              stdout,
              values['meta'] === true
                ? JSON.stringify({ topic: record.topic, partition: record.partition, offset: record.offset, timestamp: record.timestamp, key: record.key?.toString('utf8') ?? null, value: safeJson(value) })
                : value,
            )
            if (max !== undefined && ++printed >= max) abort.abort()
          }
        }),
      )
      return 0
    } finally {
      process.off('SIGINT', stop)
      await log.close()
    }
  },
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

export const logBackupCommand: Command = {
  path: ['log', 'backup'],
  summary: 'Copy the embedded event log (the SQLite file) to a new file, consistent, while the server runs.',
  usage: 'eventplane log backup DEST [--config FILE]',
  help: `Writes a copy of the SQLite event log of the config (event_log.path, by default
<data_dir>/events.sqlite) to DEST, a file that must not exist yet. The copy is one snapshot:
every record committed when the backup starts, nothing half-written, whatever the server
appends meanwhile (appends go on; readers and writers do not wait for the backup). It is
SQLite's VACUUM INTO, so the copy is also compacted. Then the copy is checked
(PRAGMA integrity_check) and its topics and records are counted.

To restore: stop the server, move events.sqlite (and events.sqlite-wal, events.sqlite-shm) away,
put the backup in its place as events.sqlite, start the server. docs/operations.md has the
whole procedure. Kafka logs are backed up on the Kafka side (replication, MirrorMaker).

Example: eventplane log backup /backups/events-$(date +%F).sqlite --config /srv/eventplane.yaml`,
  options: { ...configOption },
  maxPositionals: 1,
  async run({ values, positionals, stdout, env, cwd }) {
    const given = positionals[0]
    if (given === undefined) throw new EventplaneError('EVP_CLI_USAGE', 'name the file to write, e.g. eventplane log backup /backups/events.sqlite')
    const dest = resolve(cwd, given)
    const { config } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
    if (config.event_log.backend === 'kafka') {
      throw new EventplaneError('EVP_CLI_USAGE', 'the event log of this config is Kafka: back it up on the Kafka side (replication across brokers, MirrorMaker to another cluster)')
    }
    const path = config.event_log.path!
    if (!existsSync(path)) throw new EventplaneError('EVP_LOG_UNAVAILABLE', `no event log at ${path} (has the server run with this config?)`)
    if (existsSync(dest)) throw new EventplaneError('EVP_CLI_USAGE', `${dest} exists: a backup never overwrites a file; name a new one`)
    const started = Date.now()
    const { default: Database } = await import('better-sqlite3')
    const source = new Database(path, { readonly: true, fileMustExist: true, timeout: 5000 })
    try {
      try {
        source.prepare('VACUUM INTO ?').run(dest)
      } catch (error) {
        throw new EventplaneError('EVP_LOG_UNAVAILABLE', `the backup of ${path} to ${dest} failed: ${(error as Error).message}`, { cause: error })
      }
    } finally {
      source.close()
    }
    const copy = new Database(dest, { readonly: true, fileMustExist: true })
    try {
      const integrity = copy.pragma('integrity_check', { simple: true })
      if (integrity !== 'ok') throw new EventplaneError('EVP_LOG_UNAVAILABLE', `the backup at ${dest} fails SQLite's integrity check: ${String(integrity)}`)
      const topics = copy.prepare('SELECT count(*) FROM topics').pluck().get() as number
      const records = (copy.prepare('SELECT coalesce(sum(count), 0) FROM batches').pluck().get() as number) ?? 0
      const mib = (statSync(dest).size / 1048576).toFixed(1)
      write(stdout, `backed up ${path} to ${dest}: ${topics} topic${topics === 1 ? '' : 's'}, ${records} records, ${mib} MiB, in ${((Date.now() - started) / 1000).toFixed(1)} s (integrity check: ok)`)
      return 0
    } finally {
      copy.close()
    }
  },
}
