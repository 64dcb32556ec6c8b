import { readFileSync } from 'node:fs'
import { isEventplaneError } from '../core/errors.ts'
import { formatHelp, parseCommandArgs, write, type Command, type CommandContext } from './command.ts'
import { commandIndex, loadCommands } from './commands.ts'

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

export interface RunOptions {
  stdout?: NodeJS.WritableStream
  stderr?: NodeJS.WritableStream
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/** Runs `eventplane <args>` and resolves with the exit code (0 ok, 1 failed, 2 usage). */
export async function runCli(args: string[], options: RunOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout
  const stderr = options.stderr ?? process.stderr
  if (args[0] === '--version' || args[0] === '-v') {
    write(stdout, packageJson.version)
    return 0
  }
  const { entry, rest, prefix } = findCommand(args)
  const command = await entry?.load()
  if (command === undefined) {
    const wantsHelp = args.length === 0 || rest.some((a) => a === '--help' || a === '-h') || rest.length === 0
    const text = overview(prefix, await loadCommands())
    if (wantsHelp && rest.filter((a) => !a.startsWith('-')).length === 0) {
      write(stdout, text)
      return 0
    }
    write(stderr, `eventplane: unknown command ${JSON.stringify([...prefix, ...rest.slice(0, 1)].join(' '))}\n\n${text}`)
    return 2
  }
  try {
    const parsed = parseCommandArgs(command, rest)
    if (parsed.values['help'] === true) {
      write(stdout, formatHelp(command))
      return 0
    }
    const context: CommandContext = {
      values: parsed.values as CommandContext['values'],
      positionals: parsed.positionals,
      stdout,
      stderr,
      env: options.env ?? process.env,
      cwd: options.cwd ?? process.cwd(),
    }
    return await command.run(context)
  } catch (error) {
    if (isEventplaneError(error)) {
      write(stderr, `eventplane ${command.path.join(' ')}: ${error.message} [${error.code}]`)
      if (error.code === 'EVP_CLI_USAGE') {
        write(stderr, `Usage: ${command.usage}\nRun "eventplane ${command.path.join(' ')} --help" for details.`)
        return 2
      }
      return 1
    }
    write(stderr, `eventplane ${command.path.join(' ')}: unexpected error: ${(error as Error).stack ?? String(error)}`)
    return 1
  }
}

type Entry = (typeof commandIndex)[number]

function findCommand(args: string[]): { entry: Entry | undefined; rest: string[]; prefix: string[] } {
  let best: Entry | undefined
  for (const entry of commandIndex) {
    const matches = entry.path.every((word, i) => args[i] === word)
    if (matches && (best === undefined || entry.path.length > best.path.length)) best = entry
  }
  if (best !== undefined) return { entry: best, rest: args.slice(best.path.length), prefix: [...best.path] }
  // A group word like `schema` on its own: show that group's commands.
  const group = args[0] !== undefined && commandIndex.some((c) => c.path[0] === args[0] && c.path.length > 1) ? [args[0]] : []
  return { entry: undefined, rest: args.slice(group.length), prefix: group }
}

function overview(prefix: string[], commands: readonly Command[]): string {
  const listed = commands.filter((c) => prefix.every((word, i) => c.path[i] === word))
  const width = Math.max(...listed.map((c) => c.path.join(' ').length)) + 2
  return [
    `Usage: eventplane ${prefix.length ? prefix.join(' ') + ' ' : ''}<command> [options]`,
    '',
    prefix.length ? `Commands under "${prefix.join(' ')}":` : 'Eventplane: an open event platform (schemas, stream config, intake, streams).',
    '',
    ...(prefix.length ? [] : ['Commands:']),
    ...listed.map((c) => `  ${c.path.join(' ').padEnd(width)}${c.summary}`),
    '',
    'Run "eventplane <command> --help" for the options of a command.',
    ...(prefix.length ? [] : ['Global: --version prints the version.']),
  ].join('\n')
}
