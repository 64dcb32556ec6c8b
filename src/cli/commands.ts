import { canaryCommand } from './canary.ts'
import type { Command } from './command.ts'
import { configCheckCommand } from './config.ts'
import { logTailCommand } from './log.ts'
import { pipeCommand } from './pipe.ts'
import { produceCommand } from './produce.ts'
import { schemaInstallHookCommand, schemaMaterializeCommand, schemaNewCommand } from './schema.ts'
import { schemaCompatCommand, schemaDiffCommand, schemaLintCommand, schemaTypesCommand } from './schema-check.ts'
import { serveCommand } from './serve.ts'
import { streamsListCommand, streamsShowCommand } from './streams.ts'
import { tailCommand } from './tail.ts'

/** Every `eventplane` subcommand; `eventplane --help` lists them in this order. */
export const commands: readonly Command[] = [
  serveCommand,
  configCheckCommand,
  produceCommand,
  tailCommand,
  logTailCommand,
  schemaMaterializeCommand,
  schemaLintCommand,
  schemaCompatCommand,
  schemaDiffCommand,
  schemaNewCommand,
  schemaTypesCommand,
  schemaInstallHookCommand,
  streamsListCommand,
  streamsShowCommand,
  canaryCommand,
  pipeCommand,
]
