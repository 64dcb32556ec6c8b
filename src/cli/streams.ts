import { loadConfig } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { loadStreamConfig, type StreamConfig } from '../streamconfig/index.ts'
import { configOption, write, type Command, type CommandContext } from './command.ts'

async function streamConfigFor({ values, env, cwd }: CommandContext): Promise<StreamConfig> {
  const { config, file } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
  const source = config.stream_config.source
  if (source === undefined) {
    throw new EventplaneError('EVP_CONFIG_INVALID', `${file}: stream_config.source is not set, so there is no stream config`, {
      details: { file, key: 'stream_config.source' },
    })
  }
  return loadStreamConfig(source)
}

export const streamsListCommand: Command = {
  path: ['streams', 'list'],
  summary: 'List the configured streams: name or /regex/, schema title, topics.',
  usage: 'eventplane streams list [--config FILE] [--json]',
  help: `Loads the stream config named by stream_config.source in the config (a file or a URL),
validates it and prints one line per entry, in file order. Regex entries show their topics as
a regex. With --json, prints what GET /v1/stream-configs answers: every entry's settings keyed
by its name or regex. Exit code 0 when the stream config is valid, 1 when not.`,
  options: {
    ...configOption,
    json: { type: 'boolean', description: 'Print the settings of every entry as JSON.' },
  },
  async run(context) {
    const streams = await streamConfigFor(context)
    if (context.values['json'] === true) {
      write(context.stdout, JSON.stringify(streams.get(), null, 2))
      return 0
    }
    const rows = streams.entries.map((entry) => [entry.key.key, entry.settings.schema_title, entry.listed.topics.join(',')])
    write(context.stdout, table(['STREAM', 'SCHEMA_TITLE', 'TOPICS'], rows))
    return 0
  },
}

export const streamsShowCommand: Command = {
  path: ['streams', 'show'],
  summary: 'Print the resolved settings of one stream as JSON.',
  usage: 'eventplane streams show NAME [--config FILE]',
  help: `Resolves NAME as the intake and the stream config API do (the entry keyed by exactly NAME,
else the first /regex/ entry that matches it) and prints its settings, defaults merged in and
stream and topics computed for NAME. Exit code 1 with EVP_STREAM_NOT_FOUND when nothing matches.`,
  options: { ...configOption },
  maxPositionals: 1,
  async run(context) {
    const name = context.positionals[0]
    if (name === undefined) throw new EventplaneError('EVP_CLI_USAGE', 'missing the stream NAME')
    const streams = await streamConfigFor(context)
    const found = streams.resolve(name)
    if (found === undefined) {
      throw new EventplaneError('EVP_STREAM_NOT_FOUND', `no stream ${JSON.stringify(name)} in ${streams.source}`, {
        details: { stream: name, source: streams.source },
      })
    }
    write(context.stdout, JSON.stringify(found.settings, null, 2))
    return 0
  },
}

function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)))
  return all.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n')
}
