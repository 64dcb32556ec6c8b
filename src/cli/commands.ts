import type { Command } from './command.ts'
import { configCheckCommand } from './config.ts'
import { schemaInstallHookCommand, schemaMaterializeCommand, schemaNewCommand } from './schema.ts'
import { serveCommand } from './serve.ts'

/** Every `eventplane` subcommand; `eventplane --help` lists them in this order. */
export const commands: readonly Command[] = [
  serveCommand,
  configCheckCommand,
  schemaMaterializeCommand,
  schemaNewCommand,
  schemaInstallHookCommand,
]
