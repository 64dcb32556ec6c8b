import { parseArgs } from 'node:util'
import { loadConfig } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  multiple?: boolean
  /** Shown in --help. */
  description: string
  /** Placeholder for string options in --help, e.g. FILE. */
  value?: string
}

/** What a command gets to run with; tests pass their own streams and env. */
export interface CommandContext {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>
  positionals: string[]
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  env: NodeJS.ProcessEnv
  cwd: string
}

/**
 * One CLI subcommand. `--help` is generated from this description, so a new option cannot
 * be added without documenting it.
 */
export interface Command {
  /** Words after `eventplane`, e.g. `['schema', 'materialize']`. */
  path: readonly string[]
  summary: string
  usage: string
  /** Longer text for --help: what it does, exit codes, examples. */
  help?: string
  options: Record<string, OptionSpec>
  /** Whether positionals are allowed, and how many at most. */
  maxPositionals?: number
  run(context: CommandContext): Promise<number>
}

/** Options every command accepts. */
export const commonOptions: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', description: 'Show this help and exit.' },
}

export const configOption: Record<string, OptionSpec> = {
  config: {
    type: 'string',
    short: 'c',
    value: 'FILE',
    description: 'Config file (default: $EVENTPLANE_CONFIG, else the bundled defaults).',
  },
}

export function parseCommandArgs(command: Command, args: string[]) {
  const options = { ...commonOptions, ...command.options }
  try {
    const parsed = parseArgs({
      args,
      options: Object.fromEntries(
        Object.entries(options).map(([name, spec]) => [
          name,
          { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    })
    const max = command.maxPositionals ?? 0
    if (parsed.values['help'] !== true && parsed.positionals.length > max) {
      throw new EventplaneError(
        'EVP_CLI_USAGE',
        max === 0
          ? `unexpected argument ${JSON.stringify(parsed.positionals[0])}`
          : `too many arguments (at most ${max})`,
      )
    }
    return parsed
  } catch (error) {
    if (error instanceof EventplaneError) throw error
    throw new EventplaneError('EVP_CLI_USAGE', (error as Error).message, { cause: error })
  }
}

export function formatHelp(command: Command): string {
  const options = { ...command.options, ...commonOptions }
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`
    return [flag, spec.description + (spec.multiple ? ' (repeatable)' : '')] as const
  })
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2
  const lines = [
    `Usage: ${command.usage}`,
    '',
    command.summary,
    ...(command.help ? ['', command.help.trim()] : []),
    '',
    'Options:',
    ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}`),
  ]
  return lines.join('\n') + '\n'
}

export function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : text + '\n')
}

/** `--url`, else the address of the server the config describes (http://127.0.0.1:8192 by default). */
export function serverUrl(values: CommandContext['values'], env: NodeJS.ProcessEnv, cwd: string): string {
  const given = values['url']
  if (typeof given === 'string') {
    let parsed: URL
    try {
      parsed = new URL(given)
    } catch {
      throw new EventplaneError('EVP_CLI_USAGE', `--url ${JSON.stringify(given)} is not a URL (e.g. http://127.0.0.1:8192)`)
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new EventplaneError('EVP_CLI_USAGE', `--url must be http:// or https://, not ${parsed.protocol}`)
    return given.replace(/\/+$/, '')
  }
  const { config } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`
}
