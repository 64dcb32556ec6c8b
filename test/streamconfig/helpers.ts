import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

/** A temp folder removed by `cleanup()`; `write` puts a file in it and returns its path. */
export function tempDir(): { dir: string; write(name: string, text: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'eventplane-streamconfig-'))
  return {
    dir,
    write(name, text) {
      const file = join(dir, name)
      writeFileSync(file, text)
      return file
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** A pino logger whose JSON lines are kept in `lines`. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  return { logger: pino({ level: 'debug' }, stream), lines }
}

/** A writable that keeps what is written, for CLI output. */
export function captureStream(): NodeJS.WritableStream & { text(): string } {
  let text = ''
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk)
      done()
    },
  })
  return Object.assign(stream, { text: () => text })
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The stream config used by most tests: defaults, exact names, two overlapping regexes. */
export const sampleYaml = `
defaults:
  topic_prefixes: [eqiad., codfw.]
  canary_events_enabled: true
  producers:
    eventgate:
      enrich: true
streams:
  nonya:
    schema_title: mediawiki/nonya
    sample: {rate: 0.5}
    destination_event_service: eventgate-analytics
    topics: [nonya_topic]
  eventlogging_EventplaneTest:
    schema_title: analytics/legacy/eventplanetest
    sample: {rate: 1, unit: session}
    topic_prefixes: null
  test.event:
    schema_title: eventplane/test/event
    topic_prefixes: [dc1., dc2.]
    destination_event_service: eventgate-main
    producers:
      metrics_platform_client:
        provide_values: [page_id, performer_is_logged_in]
  mediawiki.job.special:
    schema_title: mediawiki/job/special
  /^mediawiki\\.job\\..+/:
    schema_title: mediawiki/job
    destination_event_service: eventgate-main
    canary_events_enabled: false
  /^mediawiki\\..+/:
    schema_title: mediawiki/other
`
