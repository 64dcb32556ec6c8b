import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { repoRoot } from './helpers.ts'

/** Where browser tests keep their screenshots (git-ignored; CI keeps the folder). */
export const screenshotDir = join(repoRoot, 'test-results')

/** Where to keep a page's screenshot: `test-results/{name}.png`, `{name}-kafka.png` when the suite runs on Kafka. */
export function screenshot(name: string): string {
  return join(screenshotDir, `${name}${process.env['EVENTPLANE_TEST_BACKEND'] === 'kafka' ? '-kafka' : ''}.png`)
}

/**
 * Debian's Chromium driven by playwright-core (no browser download). Fails with what to
 * install when it is missing; `EVENTPLANE_CHROMIUM` names another binary.
 */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  const executablePath = process.env['EVENTPLANE_CHROMIUM'] ?? findOnPath('chromium') ?? findOnPath('chromium-browser')
  if (executablePath === undefined) {
    throw new Error('browser tests need Chromium: run `apt-get install chromium` (Debian), or set EVENTPLANE_CHROMIUM to a Chromium binary')
  }
  mkdirSync(screenshotDir, { recursive: true })
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', ...extraArgs], timeout: 30_000 })
}

function findOnPath(name: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}
