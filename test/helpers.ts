import { chmodSync, cpSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import { runCli } from '../src/cli/main.ts'

export const repoRoot = fileURLToPath(new URL('..', import.meta.url))

/** Wikimedia's primary schema repository, kept beside the project in ../shared (also in CI). */
export const fixtureRepo = fileURLToPath(new URL('../../shared/fixtures/wmf-schemas-primary', import.meta.url))
export const bundledSchemas = join(repoRoot, 'defaults', 'schemas')

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = 'eventplane-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A writable copy of a folder (the fixture is read-only). */
export function writableCopy(source: string): string {
  const target = join(tempDir(), 'copy')
  cpSync(source, target, { recursive: true, verbatimSymlinks: true })
  makeWritable(target)
  return target
}

function makeWritable(path: string): void {
  const info = lstatSync(path)
  if (info.isSymbolicLink()) return
  chmodSync(path, info.isDirectory() ? 0o755 : 0o644)
  if (info.isDirectory()) for (const entry of readdirSync(path)) makeWritable(join(path, entry))
}

export class Capture extends Writable {
  text = ''
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.text += chunk.toString()
    callback()
  }
}

/** Runs the CLI in-process and captures its output. */
export async function cli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const stdout = new Capture()
  const stderr = new Capture()
  const code = await runCli(args, { stdout, stderr, cwd: options.cwd ?? repoRoot, env: options.env ?? {} })
  return { code, stdout: stdout.text, stderr: stderr.text }
}
