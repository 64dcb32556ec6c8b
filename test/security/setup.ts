import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { stringify } from 'yaml'
import { testPlatform, testStreams, type TestPlatform } from '../intake/helpers.ts'
import { tempDir } from '../helpers.ts'
import { sseServer } from '../streams/helpers.ts'

/** The intake suites' streams plus a /regex/ key, as the bundled stream config has. */
export const securityStreams = {
  defaults: testStreams.defaults,
  streams: { ...testStreams.streams, '/^test\\.event\\..+$/': { schema_title: 'eventplane/test/event' } },
}

/** An in-process platform on the security suites' streams, with config overrides. */
export async function securityPlatform(overrides: Record<string, unknown> = {}, streams: object = securityStreams): Promise<TestPlatform> {
  const file = join(tempDir(), 'streams.yaml')
  writeFileSync(file, stringify(streams))
  return testPlatform({ stream_config: { source: file, watch: false }, ...overrides })
}

export function post(app: FastifyInstance, events: unknown, options: { url?: string; headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url: options.url ?? '/v1/events',
    headers: { 'content-type': 'application/json', ...options.headers },
    payload: typeof events === 'string' ? events : JSON.stringify(events),
  })
}

export function testEvent(test: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const meta = (extra['meta'] as Record<string, unknown> | undefined) ?? {}
  return { $schema: '/eventplane/test/event/1.0.0', ...extra, meta: { stream: 'test.event', ...meta }, test }
}

export function codes(body: { invalid?: Array<{ context: { code: string } }>; error?: Array<{ context: { code: string } }> }, group: 'invalid' | 'error' = 'invalid'): string[] {
  return (body[group] ?? []).map((item) => item.context.code)
}

/** The `test` fields of the events in test.event's topic. */
export async function tests(t: TestPlatform, topic = 'datacenter1.test.event'): Promise<string[]> {
  return (await t.events(topic)).map((e) => String(e['test']))
}

/** A number from a Prometheus text exposition (the sum over matching series). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const set = match[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(match[3])
  }
  return sum
}

/** A seeded PRNG, so a failing random batch can be replayed. */
export { seededRandom as random } from '../../bench/lib.ts'

/**
 * Counts turns of the event loop (setImmediate callbacks) while `work` runs in this process:
 * a handler that never lets the loop run gets one or two.
 */
export async function eventLoopTurns<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0
  let running = true
  const spin = () => {
    turns++
    if (running) setImmediate(spin)
  }
  setImmediate(spin)
  try {
    const result = await work()
    return { result, turns }
  } finally {
    running = false
  }
}

/** A real server (for sockets and EventSource) on these streams, with config overrides. */
export async function securityServer(overrides: Record<string, unknown> = {}, streams: object = securityStreams) {
  return (await sseServer(overrides, streams)).server
}
