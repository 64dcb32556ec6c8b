import { loadConfig } from '../config/index.ts'
import { configOption, write, type Command } from './command.ts'

export const configCheckCommand: Command = {
  path: ['config', 'check'],
  summary: 'Validate the config file, check what serve would open, and print the effective config.',
  usage: 'eventplane config check [--config FILE] [--quiet]',
  help: `Loads the config (--config, else $EVENTPLANE_CONFIG, else the bundled defaults), applies
environment overrides (PORT, HOST, EVENTPLANE_DATA_DIR, EVENTPLANE_LOG_LEVEL, …), validates it
against its JSON Schema, then checks, without starting or writing anything, what serve would
refuse: schema repository folders that do not exist, a stream config that does not load, an
event log that cannot be written; and warns of what would run other than expected (an
intake.error_stream the stream config lacks). It prints the effective config as JSON.

Exit code 0 when serve would start (warnings are printed on stderr), 1 when not; an error names
the file, the line or the key.`,
  options: {
    ...configOption,
    quiet: { type: 'boolean', short: 'q', description: 'Print only errors and warnings.' },
  },
  async run({ values, stdout, stderr, env, cwd }) {
    const { config, file } = loadConfig({ path: values['config'] as string | undefined, env, cwd })
    const { preflight } = await import('../server/preflight.ts')
    const findings = await preflight(config)
    for (const f of findings) write(stderr, `${f.level}: ${f.key}: ${f.message} [${f.code}]`)
    const errors = findings.filter((f) => f.level === 'error').length
    if (errors > 0) {
      write(stderr, `# ${file}: valid against the config schema, but serve would not start (${errors} error${errors === 1 ? '' : 's'})`)
      return 1
    }
    if (values['quiet'] !== true) {
      write(stdout, `# ${file}: valid${findings.length > 0 ? ` (${findings.length} warning${findings.length === 1 ? '' : 's'})` : ''}`)
      write(stdout, JSON.stringify(config, null, 2))
    }
    return 0
  },
}
