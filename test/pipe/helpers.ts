import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { cli, repoRoot, tempDir, writeBundledConfig } from '../helpers.ts'

/** A folder with the bundled config, and `eventplane pipe ARGS` run in it (in-process) with that config. */
export function pipeSandbox() {
  const dir = tempDir()
  const config = writeBundledConfig(dir)
  return { dir, config, run: (...args: string[]) => cli(['pipe', ...args, '--config', config], { cwd: dir }) }
}

/** `count` events of the bundled eventplane/test/event schema, numbered from `from` (the `test` field), as NDJSON lines. */
export function testEvents(count: number, from = 0): string[] {
  const lines: string[] = []
  const now = Date.now()
  for (let i = from; i < from + count; i++) {
    lines.push(JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id: randomUUID(), dt: new Date(now - 1000 + (i % 1000)).toISOString() }, test: `event ${i}` }))
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

/**
 * An HTTP server in front of an intake that, request by request, answers 503 itself, forwards
 * after a delay, or forwards at once; `bodies` counts the requests it saw.
 */
export async function faultyIntake(target: string, plan: (request: number) => 'fail' | 'pass' | { delayMs: number }) {
  let requests = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const step = plan(++requests)
      if (step === 'fail') {
        res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' }).end(JSON.stringify({ code: 'EVP_OVERLOADED', detail: 'try later' }))
        return
      }
      setTimeout(
        () => {
          fetch(`${target}${req.url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat(chunks) }).then(
            async (answer) => res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(await answer.text()),
            () => res.writeHead(502).end(),
          )
        },
        typeof step === 'object' ? step.delayMs : 0,
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/events`,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
