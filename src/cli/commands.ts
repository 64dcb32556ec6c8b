import type { Command } from './command.ts'

/**
 * Every `eventplane` subcommand, in the order `eventplane --help` lists them: its words, and
 * where its definition is. A command's module is loaded only when it runs (or for the list),
 * so that `eventplane schema check` does not pay for fastify, SQLite or the Kafka client.
 * test/cli/cli.test.ts checks that each module defines the command at its path.
 */
export const commandIndex: ReadonlyArray<{ path: readonly string[]; load: () => Promise<Command> }> = [
  { path: ['serve'], load: async () => (await import('./serve.ts')).serveCommand },
  { path: ['config', 'check'], load: async () => (await import('./config.ts')).configCheckCommand },
  { path: ['produce'], load: async () => (await import('./produce.ts')).produceCommand },
  { path: ['tail'], load: async () => (await import('./tail.ts')).tailCommand },
  { path: ['log', 'tail'], load: async () => (await import('./log.ts')).logTailCommand },
  { path: ['log', 'backup'], load: async () => (await import('./log.ts')).logBackupCommand },
  { path: ['schema', 'materialize'], load: async () => (await import('./schema.ts')).schemaMaterializeCommand },
  { path: ['schema', 'lint'], load: async () => (await import('./schema-check.ts')).schemaLintCommand },
  { path: ['schema', 'compat'], load: async () => (await import('./schema-check.ts')).schemaCompatCommand },
  { path: ['schema', 'check'], load: async () => (await import('./schema-check.ts')).schemaCheckCommand },
  { path: ['schema', 'diff'], load: async () => (await import('./schema-check.ts')).schemaDiffCommand },
  { path: ['schema', 'new'], load: async () => (await import('./schema.ts')).schemaNewCommand },
  { path: ['schema', 'types'], load: async () => (await import('./schema-check.ts')).schemaTypesCommand },
  { path: ['schema', 'install-hook'], load: async () => (await import('./schema.ts')).schemaInstallHookCommand },
  { path: ['streams', 'list'], load: async () => (await import('./streams.ts')).streamsListCommand },
  { path: ['streams', 'show'], load: async () => (await import('./streams.ts')).streamsShowCommand },
  { path: ['canary'], load: async () => (await import('./canary.ts')).canaryCommand },
  { path: ['pipe'], load: async () => (await import('./pipe.ts')).pipeCommand },
]

/** Every command, loaded (for the list of commands and its summaries). */
export function loadCommands(): Promise<Command[]> {
  return Promise.all(commandIndex.map((entry) => entry.load()))
}
