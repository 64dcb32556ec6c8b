import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot } from '../helpers.ts'

/** `count` events of the bundled test/event schema, numbered from `from` (the `test` field), as NDJSON lines. */
export function testEvents(count: number, from = 0): string[] {
  const lines: string[] = []
  const now = Date.now()
  for (let i = from; i < from + count; i++) {
    lines.push(JSON.stringify({ $schema: '/test/event/1.0.0', meta: { stream: 'test.event', id: randomUUID(), dt: new Date(now - 1000 + (i % 1000)).toISOString() }, test: `event ${i}` }))
  }
  return lines
}

export function writeLines(path: string, lines: readonly string[]): string {
  writeFileSync(path, lines.map((l) => `${l}\n`).join(''))
  return path
}

/** The lines of an NDJSON file (no trailing empty line). */
export function readLines(path: string): string[] {
  const text = readFileSync(path, 'utf8')
  return text === '' ? [] : text.replace(/\n$/, '').split('\n')
}

export function readState(path: string): { source: Record<string, unknown>; sink: Record<string, unknown> | undefined; totals: Record<string, number> } {
  return JSON.parse(readFileSync(path, 'utf8')) as ReturnType<typeof readState>
}

/** `eventplane pipe …` as its own process (for stdin/stdout and signals), in the repository (tsx is found from there): give absolute paths. */
export function spawnPipe(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/bin.ts'), 'pipe', ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  if (options.input !== undefined) child.stdin.end(options.input)
  else child.stdin.end()
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
  }
}
