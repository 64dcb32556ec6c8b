import { loadConfig } from '../config/index.ts'
import { configOption, write, type Command } from './command.ts'

export const configCheckCommand: Command = {
  path: ['config', 'check'],
  summary: 'Validate the config file and print the effective config.',
  usage: 'eventplane config check [--config FILE] [--quiet]',
  help: `Loads the config (--config, else $EVENTPLANE_CONFIG, else the bundled defaults), applies
environment overrides (PORT, HOST, EVENTPLANE_DATA_DIR, EVENTPLANE_LOG_LEVEL, …), validates it
against its JSON Schema and prints the result as JSON. Exit code 0 when valid, 1 when not; an
error names the file, the line and the key.`,
  options: {
    ...configOption,
    quiet: { type: 'boolean', short: 'q', description: 'Print nothing when the config is valid.' },
  },
  async run({ values, stdout, env, cwd }) {
    const { config, file } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
    if (values['quiet'] !== true) {
      write(stdout, `# ${file}: valid`)
      write(stdout, JSON.stringify(config, null, 2))
    }
    return 0
  },
}
