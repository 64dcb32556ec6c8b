import { loadConfig } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { configOption, write, type Command } from './command.ts'

export const canaryCommand: Command = {
  path: ['canary'],
  summary: 'Send a canary event to every stream with canary_events_enabled (or to the streams named).',
  usage: 'eventplane canary [STREAM…] [--config FILE] [--url URL] [--dry-run]',
  help: `For each stream configured by name with canary_events_enabled (or each STREAM named), takes
the first example of its latest schema, sets meta.domain to "canary" and meta.stream to the
stream, removes meta.dt and meta.id (the intake sets them), and posts it alone to the stream's
intake: canary.destinations[its destination_event_service], else --url. Only 201 and 202 count
as sent. Prints one line per stream: STREAM, sent / failed / skipped, and why. Consumers leave
canaries out (GET /v2/stream does unless ?canary=include). \`serve\` sends them itself every
canary.interval_s (an hour by default).

Exit codes: 0 every stream got its canary, 1 one did not (no example, an intake refusal, no
answer), 2 usage.

Examples:
  eventplane canary                         # every canary-enabled stream, to this config's server
  eventplane canary test.event --dry-run    # print test.event's canary, send nothing`,
  options: {
    ...configOption,
    url: { type: 'string', value: 'URL', description: "Intake of streams whose destination is not in canary.destinations (default: this config's server, http://127.0.0.1:<server.port>)." },
    'dry-run': { type: 'boolean', description: 'Print the canaries as NDJSON and the streams that have none; send nothing.' },
  },
  maxPositionals: 10_000,
  async run({ values, positionals, env, cwd, stdout, stderr }) {
    const { config, file } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
    const source = config.stream_config.source
    if (source === undefined) {
      throw new EventplaneError('EVP_CONFIG_INVALID', `${file}: stream_config.source is not set, so no stream has canary events`, { details: { file, key: 'stream_config.source' } })
    }
    const url = (values['url'] as string | undefined) ?? `http://127.0.0.1:${config.server.port}`
    if (!/^https?:\/\/[^/]/.test(url)) throw new EventplaneError('EVP_CLI_USAGE', `--url must be an http(s) URL, not ${JSON.stringify(url)}`)
    // Loaded here, not at the top: --help and the other commands do not need them.
    const [{ planCanaries, sendCanaries }, { openSchemas }, { loadStreamConfig }] = await Promise.all([import('../canary/index.ts'), import('../server/schemas.ts'), import('../streamconfig/index.ts')])
    const plans = await planCanaries(await loadStreamConfig(source), openSchemas(config).schemas, positionals)
    if (plans.length === 0) {
      write(stderr, 'no stream has canary_events_enabled: true; nothing to send')
      return 0
    }
    if (values['dry-run'] === true) {
      for (const plan of plans) {
        if (plan.event !== undefined) write(stdout, JSON.stringify(plan.event))
        else write(stderr, `${plan.stream}: no canary: ${plan.problem}`)
      }
      return plans.every((plan) => plan.event !== undefined) ? 0 : 1
    }
    const results = await sendCanaries(plans, { defaultUrl: url, destinations: config.canary.destinations })
    for (const result of results) write(stdout, `${result.stream}\t${result.outcome}\t${result.detail}`)
    const sent = results.filter((result) => result.outcome === 'sent').length
    write(stderr, `${sent} of ${results.length} streams got a canary`)
    return sent === results.length ? 0 : 1
  },
}
