import { EventplaneError } from '../core/errors.ts'
import { followStream } from '../streams/follow.ts'
import { configOption, serverUrl, write, type Command } from './command.ts'

export const tailCommand: Command = {
  path: ['tail'],
  summary: 'Follow streams of a server over Server-Sent Events and print their events; resumes after a reconnect.',
  usage: 'eventplane tail STREAM[,STREAM…] [STREAM…] [--url URL] [--since TIME | --last N] [--filter CEL] [--match FIELD=VALUE]…',
  help: `Connects to URL/v2/stream/STREAMS and prints one event per line (JSON). When the
connection drops or the server restarts it reconnects with the id of the last event printed,
so no event is missed or printed twice; waits grow from the server's retry hint up to 30 s.
Status lines (connected, reconnecting, errors) go to stderr. On exit it prints the id to pass
to --last-event-id to go on from there.

TIME is epoch milliseconds, an ISO-8601 time, or a duration ago: 30s, 10m, 2h, 1d.
CEL is an expression over the event, evaluated by the server, e.g.
  --filter 'meta.domain == "en.wikipedia.org" && !bot'

Exit codes: 0 stopped (Ctrl-C or --max reached), 1 the server refused the request (unknown
stream, bad filter…), 2 usage.

Examples:
  eventplane tail test.event
  eventplane tail eventplane.error.validation --last 20
  eventplane tail mediawiki.recentchange --since 10m --match meta.domain=en.wikipedia.org`,
  options: {
    ...configOption,
    url: { type: 'string', short: 'u', value: 'URL', description: 'Server base URL (default: the configured server).' },
    since: { type: 'string', short: 's', value: 'TIME', description: 'Start at TIME instead of now.' },
    last: { type: 'string', value: 'N', description: 'Start N events back in each partition (1 to 10000), like tail -n.' },
    filter: { type: 'string', short: 'f', value: 'CEL', description: 'Only events for which this CEL expression is true.' },
    match: { type: 'string', short: 'm', multiple: true, value: 'FIELD=VALUE', description: 'Only events whose field (dotted path) equals VALUE.' },
    canary: { type: 'boolean', description: 'Include canary events (left out by default).' },
    'last-event-id': { type: 'string', value: 'ID', description: 'Resume from this id (printed by an earlier tail on exit).' },
    max: { type: 'string', short: 'n', value: 'N', description: 'Stop after N events.' },
    quiet: { type: 'boolean', short: 'q', description: 'No status lines on stderr.' },
  },
  maxPositionals: 100,
  async run({ values, positionals, stdout, stderr, env, cwd }) {
    const streams = positionals.flatMap((p) => p.split(',')).map((s) => s.trim()).filter((s) => s !== '')
    if (streams.length === 0) throw new EventplaneError('EVP_CLI_USAGE', 'name at least one stream, e.g. eventplane tail test.event')
    const max = values['max'] === undefined ? undefined : Number(values['max'])
    if (max !== undefined && (!Number.isInteger(max) || max < 1)) throw new EventplaneError('EVP_CLI_USAGE', '--max must be a positive integer')
    const query = new URLSearchParams()
    if (typeof values['since'] === 'string') query.set('since', String(parseSinceOption(values['since'], Date.now())))
    if (typeof values['last'] === 'string') {
      if (query.has('since')) throw new EventplaneError('EVP_CLI_USAGE', 'give --since or --last, not both')
      query.set('last', values['last'])
    }
    if (typeof values['filter'] === 'string') query.set('filter', values['filter'])
    for (const match of (values['match'] as string[] | undefined) ?? []) {
      const eq = match.indexOf('=')
      if (eq <= 0) throw new EventplaneError('EVP_CLI_USAGE', `--match ${JSON.stringify(match)}: write FIELD=VALUE, e.g. meta.domain=en.wikipedia.org`)
      query.append(`match[${match.slice(0, eq)}]`, match.slice(eq + 1))
    }
    if (values['canary'] === true) query.set('canary', 'include')
    const url = `${serverUrl(values, env, cwd)}/v2/stream/${streams.map(encodeURIComponent).join(',')}${query.size > 0 ? `?${query}` : ''}`
    const status = (text: string) => values['quiet'] !== true && write(stderr, text)

    const abort = new AbortController()
    const stop = () => abort.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    let printed = 0
    let lastEventId = typeof values['last-event-id'] === 'string' ? values['last-event-id'] : ''
    try {
      await followStream({
        url,
        lastEventId,
        signal: abort.signal,
        onEvent(event) {
          stdout.write(`${event.data.replace(/\n/g, '')}\n`)
          lastEventId = event.lastEventId
          if (max !== undefined && ++printed >= max) abort.abort()
        },
        onStatus(s) {
          if (s.kind === 'open') status(`connected to ${url}${s.resumed ? ' (resuming)' : ''}`)
          else if (s.kind === 'server-error') status(`the server ended the stream: ${s.code} ${s.detail}`)
          else status(`disconnected (${s.reason}); reconnecting in ${(s.inMs / 1000).toFixed(1)} s`)
        },
      })
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      if (lastEventId !== '') status(`to go on from here: --last-event-id '${lastEventId}'`)
    }
    return 0
  },
}

/** Epoch ms, ISO-8601, or a duration ago (`30s`, `10m`, `2h`, `1d`), as epoch ms. */
export function parseSinceOption(text: string, now: number): number {
  const ago = /^(\d+)\s*(ms|s|m|h|d)$/.exec(text.trim())
  if (ago !== null) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 'ms' | 's' | 'm' | 'h' | 'd']
    return now - Number(ago[1]) * unit
  }
  if (/^\d+$/.test(text)) return Number(text)
  const parsed = Date.parse(text)
  if (!Number.isFinite(parsed)) {
    throw new EventplaneError('EVP_CLI_USAGE', `--since ${JSON.stringify(text)}: give epoch milliseconds, an ISO-8601 time, or a duration ago such as 10m`)
  }
  return parsed
}
