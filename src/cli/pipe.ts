import { resolve } from 'node:path'
import { loadConfig } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { endpointExamples, parseEndpoint } from '../pipe/endpoints.ts'
import type { Counts, PipeResult, Progress } from '../pipe/index.ts'
import { configOption, write, type Command } from './command.ts'

export const pipeCommand: Command = {
  path: ['pipe'],
  summary: 'Move events from one endpoint to another (logs, Kafka, files, intakes, streams), validating and transforming on the way.',
  usage: 'eventplane pipe FROM TO [--validate] [--filter CEL] [--set PATH=VALUE]… [--drop PATH]… [--limit N] [--state FILE]',
  help: `Reads events from FROM and writes them to TO, in batches. The position in FROM moves past
an event only once TO holds it, and with --state it is saved to FILE, so that a pipe started
again with the same FILE goes on with no gap and no duplicate. Ctrl-C stops after the batch in
hand is written (press it again to stop at once).

Endpoints (FROM and TO; "-" is stdin or stdout, a bare path is a file):
${endpointExamples()
  .map((e) => `  ${e}`)
  .join('\n')}
  sources: embedded, kafka, file, stdin, sse; destinations: embedded, kafka, file, stdout, http(s)
  from=: where a log source starts without a saved position (default earliest).
  A file destination is renamed to NAME.<UTC time>.ndjson past rotate_bytes (default 256 MiB).

On the way, in this order: lines that are not JSON objects are skipped and counted (--strict
stops at the first, with its line number); --filter keeps the events for which the CEL
expression is true; --set and --drop change fields (dotted paths; VALUE is JSON, or else a
string); --validate skips and counts events that do not validate against their $schema
(looked up in the config's schema repositories).

A destination that fails (unreachable intake, full disk, broker down) is tried again with
backoff (--retries); when the attempts run out the pipe stops, and the state points at the
first event not written. An intake's per-event refusals are counted, not retried.

On a terminal, progress (events/s, totals, lag) is shown on stderr; a summary line ends every run.
Exit codes: 0 done (end of the source, --limit, or Ctrl-C), 1 failed, 2 usage.

Examples:
  eventplane pipe embedded://datacenter1.test.event events.ndjson --no-follow
  eventplane pipe events.ndjson http://127.0.0.1:8192/v1/events --state pipe.state
  eventplane pipe kafka://127.0.0.1:9092/eqiad.mediawiki.recentchange embedded://rc --filter 'wiki == "enwiki"'
  eventplane pipe sse://127.0.0.1:8192/v2/stream/test.event stdout:// --drop http --limit 10`,
  options: {
    ...configOption,
    validate: { type: 'boolean', description: 'Skip (and count) events that do not validate against their $schema.' },
    filter: { type: 'string', short: 'f', value: 'CEL', description: 'Keep only events for which this CEL expression is true.' },
    set: { type: 'string', short: 's', multiple: true, value: 'PATH=VALUE', description: 'Set a field (VALUE is JSON, or else a string).' },
    drop: { type: 'string', short: 'd', multiple: true, value: 'PATH', description: 'Delete a field.' },
    limit: { type: 'string', short: 'n', value: 'N', description: 'Stop after N events read.' },
    state: { type: 'string', value: 'FILE', description: 'Save the position to FILE, and resume from it.' },
    strict: { type: 'boolean', description: 'Stop at the first malformed line instead of skipping it.' },
    'no-follow': { type: 'boolean', description: 'Log sources: stop at the end instead of waiting for new events.' },
    batch: { type: 'string', short: 'b', value: 'N', description: 'Events per write (default 1000).' },
    retries: { type: 'string', value: 'N', description: 'Attempts again after a destination failure (default 10).' },
    quiet: { type: 'boolean', short: 'q', description: 'No progress, notices or summary on stderr.' },
  },
  maxPositionals: 2,
  async run({ values, positionals, stderr, env, cwd }) {
    const [fromUri, toUri] = positionals
    if (fromUri === undefined || toUri === undefined) throw new EventplaneError('EVP_CLI_USAGE', 'name a source and a destination, e.g. eventplane pipe events.ndjson embedded://datacenter1.test.event')
    const integer = (name: string, min: number, max: number) => {
      const text = values[name] as string | undefined
      if (text === undefined) return undefined
      const n = Number(text)
      if (!/^\d+$/.test(text) || n < min || n > max) throw new EventplaneError('EVP_CLI_USAGE', `--${name} must be an integer from ${min} to ${max}`)
      return n
    }
    const set = ((values['set'] as string[] | undefined) ?? []).map((spec) => {
      const eq = spec.indexOf('=')
      if (eq <= 0) throw new EventplaneError('EVP_CLI_USAGE', `--set ${JSON.stringify(spec)}: write PATH=VALUE, e.g. meta.domain=canary`)
      const text = spec.slice(eq + 1)
      let value: unknown = text
      try {
        value = JSON.parse(text)
      } catch {
        // not JSON: the string as given
      }
      return [spec.slice(0, eq), value] as const
    })
    const quiet = values['quiet'] === true
    const tty = !quiet && (stderr as NodeJS.WriteStream).isTTY === true
    let progressShown = false
    const notice = (text: string) => {
      if (quiet) return
      if (progressShown) stderr.write('\r\x1b[K')
      progressShown = false
      write(stderr, text)
    }
    const { config } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
    const soft = new AbortController()
    const hard = new AbortController()
    const onSignal = () => {
      if (!soft.signal.aborted) {
        notice('stopping after the batch in hand (Ctrl-C again to stop now)')
        soft.abort()
      } else hard.abort()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const limit = integer('limit', 1, Number.MAX_SAFE_INTEGER)
    const batch = integer('batch', 1, 100_000)
    const retries = integer('retries', 0, 1000)
    const statePath = typeof values['state'] === 'string' ? resolve(cwd, values['state']) : undefined
    const started = performance.now()
    let result: PipeResult
    // Loaded here: the other commands (and --help) should not pay for SQLite, ajv and CEL.
    const { runPipe } = await import('../pipe/index.ts')
    try {
      result = await runPipe({
        from: { uri: fromUri, endpoint: parseEndpoint(fromUri, 'source', cwd) },
        to: { uri: toUri, endpoint: parseEndpoint(toUri, 'destination', cwd) },
        config,
        validate: values['validate'] === true,
        ...(typeof values['filter'] === 'string' ? { filter: values['filter'] } : {}),
        set,
        drop: (values['drop'] as string[] | undefined) ?? [],
        ...(limit === undefined ? {} : { limit }),
        ...(batch === undefined ? {} : { batch }),
        ...(retries === undefined ? {} : { retries }),
        ...(statePath === undefined ? {} : { statePath }),
        strict: values['strict'] === true,
        follow: values['no-follow'] !== true,
        signal: soft.signal,
        hardSignal: hard.signal,
        notice,
        ...(tty
          ? {
              onProgress(p: Progress) {
                stderr.write(`\r\x1b[K${formatProgress(p)}`)
                progressShown = true
              },
            }
          : {}),
      })
    } catch (error) {
      if (progressShown) stderr.write('\r\x1b[K')
      progressShown = false
      throw error
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
    const why = { end: 'the source ended', limit: `--limit ${limit ?? ''} reached`, signal: 'stopped by a signal' }[result.stoppedBy]
    notice(`pipe: ${formatCounts(result)} in ${((performance.now() - started) / 1000).toFixed(1)} s (${rate(result.read, result.elapsedMs)} events/s): ${why}${statePath === undefined ? '' : `; position saved to ${statePath}`}`)
    return 0
  },
}

function formatCounts(c: Counts): string {
  const parts = [`${c.read.toLocaleString('en-US')} read`, `${c.written.toLocaleString('en-US')} written`]
  for (const key of ['filtered', 'malformed', 'invalid', 'refused', 'retries'] as const) {
    if (c[key] > 0) parts.push(`${c[key].toLocaleString('en-US')} ${key}`)
  }
  return parts.join(', ')
}

function formatProgress(p: Progress): string {
  const lag = p.lag === undefined ? '' : `, lag ${p.lag.value.toLocaleString('en-US')} ${p.lag.unit}`
  return `${formatCounts(p)} · ${Math.round(p.rate).toLocaleString('en-US')} events/s${lag}`
}

function rate(events: number, ms: number): string {
  return Math.round((events * 1000) / Math.max(1, ms)).toLocaleString('en-US')
}
