#!/usr/bin/env node
import { runCli } from './main.ts'

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`eventplane: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  },
)
