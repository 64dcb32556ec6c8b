import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { EventSource } from 'eventsource'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { startServer, type RunningServer } from '../../src/server/index.ts'
import { bundledSchemas, tempDir, testEventLog } from '../helpers.ts'

export const streamsConfig = {
  defaults: { topic_prefixes: ['datacenter1.'] },
  streams: {
    'test.event': { schema_title: 'eventplane/test/event', stream_aliases: ['test-alias'] },
    'other.event': { schema_title: 'eventplane/test/event' },
    'mediawiki.recentchange': { schema_title: 'eventplane/mediawiki/recentchange' },
    'eventplane.error.validation': { schema_title: 'eventplane/error' },
  },
}

/** A real server (EventSource needs a URL) on a fresh data folder and these streams; `restart` keeps the data. */
export async function sseServer(overrides: Record<string, unknown> = {}, streamConfig: object = streamsConfig) {
  const dir = tempDir()
  const streams = join(dir, 'streams.yaml')
  writeFileSync(streams, stringify(streamConfig))
  const file = join(dir, 'eventplane.yaml')
  writeFileSync(
    file,
    stringify({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: streams, watch: false },
      data_dir: join(dir, 'data'),
      ...overrides,
      server: { port: 0, ...((overrides['server'] as object | undefined) ?? {}) },
      event_log: await testEventLog({ topic_partitions: { 'datacenter1.other.event': 2 }, ...((overrides['event_log'] as object | undefined) ?? {}) }),
    }),
  )
  const open = async () => startServer(loadConfig({ path: file, env: {} }).config, { logger: pino({ level: 'silent' }) })
  const state = { server: await open() }
  return {
    get url() {
      return state.server.url
    },
    get server(): RunningServer {
      return state.server
    },
    async restart() {
      await state.server.close()
      state.server = await open()
    },
    close: () => state.server.close(),
  }
}

export function testEvent(test: string, stream = 'test.event', extra: Record<string, unknown> = {}) {
  return { $schema: '/eventplane/test/event/1.0.0', meta: { stream, ...((extra['meta'] as object) ?? {}) }, test, ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'meta')) }
}

export async function produce(url: string, events: unknown[]): Promise<void> {
  const response = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
  if (response.status !== 201) throw new Error(`produce answered ${response.status}: ${await response.text()}`)
}

export interface Received {
  data: Record<string, unknown>
  id: string
}

/** An EventSource client collecting `message` events (optionally starting from a Last-Event-ID). */
export function listen(url: string, lastEventId?: string) {
  const received: Received[] = []
  const errors: string[] = []
  const source = new EventSource(url, {
    fetch: (input, init) =>
      fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...(lastEventId ? { 'last-event-id': lastEventId } : {}) } }),
  })
  source.addEventListener('message', (event) => received.push({ data: JSON.parse(event.data) as Record<string, unknown>, id: event.lastEventId }))
  source.addEventListener('error', (event) => errors.push(String((event as unknown as { message?: string }).message ?? 'error')))
  const opened = new Promise<void>((resolve, reject) => {
    source.addEventListener('open', () => resolve(), { once: true })
    setTimeout(() => reject(new Error('the stream did not open within 5 s')), 5000).unref()
  })
  return { source, received, errors, opened, close: () => source.close() }
}

export async function until(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
