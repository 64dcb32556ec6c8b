import type { Command } from './command.ts'
import { configCheckCommand } from './config.ts'

/** Every `eventplane` subcommand; `eventplane --help` lists them in this order. */
export const commands: readonly Command[] = [configCheckCommand]
