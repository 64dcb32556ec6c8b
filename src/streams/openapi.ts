import { EventplaneError } from '../core/errors.ts'
import type { SchemaSource } from '../schemas/index.ts'
import type { ServedStream } from './exposure.ts'

/** The OpenAPI paths of the streams: one generic path with the served names, and one per stream. */
export interface StreamsOpenApi {
  paths: Record<string, unknown>
  /** Streams whose latest schema could not be loaded, with the reason (logged by the caller). */
  failures: Array<{ stream: string; uri: string; code: string; message: string }>
}

/**
 * Describes `GET /v2/stream/{streams}` for the streams served, as EventStreams does: the path
 * parameter lists every name (the viewer at `/v2/ui` reads the names from there), and each
 * stream gets its own path whose response schema and example come from its latest schema
 * (`$schema`, `$id` and `examples` removed). A stream whose schema cannot be loaded is still
 * listed, without a response schema.
 */
export async function streamsOpenApi(served: ReadonlyMap<string, ServedStream>, schemas: SchemaSource): Promise<StreamsOpenApi> {
  const names = [...served.keys()].sort()
  const failures: StreamsOpenApi['failures'] = []
  const loaded = new Map<string, Promise<Record<string, unknown> | undefined>>()
  const latest = (stream: ServedStream): Promise<Record<string, unknown> | undefined> => {
    const uri = latestSchemaUri(stream)
    if (uri === undefined) return Promise.resolve(undefined)
    let hit = loaded.get(uri)
    if (hit === undefined) {
      hit = schemas.get(uri).then(
        (s) => s.schema,
        (error: unknown) => {
          failures.push({ stream: stream.stream, uri, code: error instanceof EventplaneError ? error.code : 'EVP_INTERNAL', message: error instanceof Error ? error.message : String(error) })
          return undefined
        },
      )
      loaded.set(uri, hit)
    }
    return hit
  }

  const parameters = [
    { name: 'since', in: 'query', schema: { type: 'string' }, description: 'Start at this time: epoch milliseconds or ISO-8601. Default: now.' },
    { name: 'last', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000 }, description: 'Start this many events back in each partition (like tail -n), then live. Not with since.' },
    { name: 'filter', in: 'query', schema: { type: 'string' }, description: 'A CEL expression over the event; only events for which it is true are sent. Example: meta.domain == "en.wikipedia.org" && !bot' },
    { name: 'match[field.path]', in: 'query', schema: { type: 'string' }, description: 'Only events whose field (a dotted path) equals this value; repeatable.' },
    { name: 'canary', in: 'query', schema: { enum: ['include'] }, description: 'Include canary events (meta.domain == "canary"), left out by default.' },
    { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' }, description: 'Resume: a JSON array of {topic, partition, offset|timestamp}, as sent in the id: field.' },
  ]
  const problem = { description: 'A problem document (docs/errors.md).', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } }
  const errors = {
    '400': { ...problem, description: 'Unknown stream, bad since or last, bad Last-Event-ID, or a filter that is invalid or too complex.' },
    '404': { ...problem, description: 'Last-Event-ID names a topic outside the streams asked for.' },
    '429': { ...problem, description: 'Too many streams open from this client address (see Retry-After).' },
  }
  const operation = (summary: string, description: string, schema: Record<string, unknown> | undefined, example: unknown) => ({
    summary,
    description,
    parameters,
    responses: {
      '200': {
        description:
          'Server-Sent Events: `event: message`, `id:` (positions to resume from), `data:` (the event, with meta.topic, meta.partition and meta.offset). ' +
          'With `Accept: application/json`: one JSON event per line.',
        content: {
          'text/event-stream': { schema: schema ?? { type: 'object' }, ...(example !== undefined ? { example } : {}) },
          'application/json': { schema: schema ?? { type: 'object' } },
        },
      },
      ...errors,
    },
  })

  const paths: Record<string, unknown> = {
    '/v2/stream/{streams}': {
      get: {
        ...operation(
          'Follow streams (Server-Sent Events)',
          'Events of every topic of the streams named (comma separated), merged into one response, from `since` or `Last-Event-ID`, through an optional filter.',
          undefined,
          undefined,
        ),
        parameters: [
          { name: 'streams', in: 'path', required: true, style: 'simple', explode: false, schema: { type: 'array', items: { type: 'string', enum: names } }, description: 'Stream names or aliases, comma separated.' },
          ...parameters,
        ],
      },
    },
  }
  await Promise.all(
    names.map(async (name) => {
      const stream = served.get(name)!
      const schema = await latest(stream)
      const described = schema === undefined ? undefined : responseSchema(schema)
      const example = schema === undefined ? undefined : firstExample(schema)
      const description = typeof stream.settings['description'] === 'string' ? stream.settings['description'] : `Events of ${stream.stream}.`
      paths[`/v2/stream/${name}`] = {
        get: {
          ...operation(name === stream.stream ? `Follow ${name}` : `Follow ${name} (alias of ${stream.stream})`, description, described, example),
          tags: ['streams'],
          ...(schema === undefined ? {} : { 'x-schema-uri': latestSchemaUri(stream) }),
        },
      }
    }),
  )
  // Paths in name order, whatever order the schemas loaded in.
  const ordered: Record<string, unknown> = { '/v2/stream/{streams}': paths['/v2/stream/{streams}'] }
  for (const name of names) ordered[`/v2/stream/${name}`] = paths[`/v2/stream/${name}`]
  return { paths: ordered, failures }
}

/** The stream's `$schema` setting, else `/<schema_title>/latest`. */
export function latestSchemaUri(stream: ServedStream): string | undefined {
  const explicit = stream.settings['$schema']
  if (typeof explicit === 'string' && explicit.startsWith('/')) return explicit
  const title = stream.settings.schema_title
  return typeof title === 'string' && title !== '' ? `/${title}/latest` : undefined
}

function responseSchema(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _s, $id: _i, examples: _e, ...rest } = schema
  return rest
}

function firstExample(schema: Record<string, unknown>): unknown {
  const examples = schema['examples']
  return Array.isArray(examples) && examples.length > 0 ? examples[0] : undefined
}
