import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import type { LogRecord } from '../../src/log/index.ts'
import { buildApp, openPlatform, type Platform } from '../../src/server/index.ts'
import { bundledSchemas, repoRoot, tempDir, testEventLog } from '../helpers.ts'

export interface TestPlatform {
  app: FastifyInstance
  platform: Platform
  dir: string
  /** Every record of a topic (all partitions), without following. */
  records(topic: string): Promise<LogRecord[]>
  /** Events (parsed values) of a topic. */
  events(topic: string): Promise<Array<Record<string, unknown>>>
  close(): Promise<void>
}

/** A schema repository with schemas the bundled one lacks: one that does not compile, one open to any field. */
export function extraRepository(dir: string): string {
  const root = join(dir, 'extra')
  const write = (title: string, version: string, schema: object) => {
    mkdirSync(join(root, title), { recursive: true })
    writeFileSync(join(root, title, `${version}.yaml`), stringify(schema))
  }
  write('broken/event', '1.0.0', {
    title: 'broken/event',
    $id: '/broken/event/1.0.0',
    $schema: 'https://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: { s: { type: 'string', pattern: '([unclosed' } },
  })
  write('open/event', '1.0.0', {
    title: 'open/event',
    $id: '/open/event/1.0.0',
    $schema: 'https://json-schema.org/draft-07/schema#',
    type: 'object',
    required: ['$schema', 'meta'],
    properties: { $schema: { type: 'string' }, meta: { type: 'object', properties: { stream: { type: 'string' }, dt: { type: 'string' } } } },
  })
  return root
}

export const testStreams = {
  defaults: { topic_prefixes: ['datacenter1.'] },
  streams: {
    'test.event': { schema_title: 'eventplane/test/event' },
    'eventplane.error.validation': { schema_title: 'eventplane/error' },
    'mediawiki.revision-create': { schema_title: 'eventplane/mediawiki/revision/create', message_key_fields: { wiki_id: 'database', page_id: 'page_id' } },
    'broken.event': { schema_title: 'broken/event' },
    'open.event': { schema_title: 'open/event' },
    'unprefixed.event': { schema_title: 'eventplane/test/event', topic_prefixes: null },
  },
}

export async function testPlatform(overrides: Record<string, unknown> = {}): Promise<TestPlatform> {
  const dir = tempDir()
  const streams = join(dir, 'streams.yaml')
  writeFileSync(streams, stringify(testStreams))
  const config = {
    schemas: {
      repositories: [
        { name: 'eventplane', path: bundledSchemas },
        { name: 'extra', path: extraRepository(dir) },
      ],
    },
    stream_config: { source: streams, watch: false },
    data_dir: join(dir, 'data'),
    ...overrides,
    event_log: await testEventLog((overrides['event_log'] as Record<string, unknown> | undefined) ?? {}),
  }
  const file = join(dir, 'eventplane.yaml')
  writeFileSync(file, stringify(config))
  const { config: loaded } = loadConfig({ path: file, env: {}, cwd: repoRoot })
  const platform = await openPlatform(loaded, { logger: pino({ level: 'silent' }) })
  const app = await buildApp(platform)
  const records = async (topic: string) => {
    if (!(await platform.log!.topics()).includes(topic)) return []
    const out: LogRecord[] = []
    const partitions = await platform.log!.partitions(topic)
    for (let partition = 0; partition < partitions; partition++) {
      for await (const record of platform.log!.read({ topic, partition, offset: 0 }, { follow: false })) out.push(record)
    }
    return out
  }
  return {
    app,
    platform,
    dir,
    records,
    events: async (topic) => (await records(topic)).map((r) => JSON.parse(r.value.toString('utf8')) as Record<string, unknown>),
    async close() {
      await app.close()
      await platform.close()
    },
  }
}

/** Waits (bounded) until `check` returns true. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
