import { errorCodes } from '../core/errors.ts'

/**
 * The OpenAPI 3.1 document of the HTTP API (`GET /?spec`), written by hand next to the
 * routes it describes; test/server/openapi.test.ts checks that every documented path answers
 * and that the example event is accepted.
 */
export function openApiDocument(version: string, streamPaths: Record<string, unknown> = {}): Record<string, unknown> {
  const problem = {
    description: 'An RFC 9457 problem document with a stable code (docs/errors.md).',
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
  }
  const exampleEvent = {
    $schema: '/eventplane/test/event/1.0.0',
    meta: { stream: 'test.event' },
    test: 'hello',
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Eventplane',
      version,
      description:
        'An open event platform: schema registry, stream config, event intake and event streams. Intake answers follow ' +
        "Wikimedia's EventGate (201/202/207/400/500), with 400/413/415 problem documents for bad bodies; streams follow " +
        "Wikimedia's EventStreams (Server-Sent Events with Last-Event-ID resume), with server-side filters.",
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    tags: [{ name: 'streams', description: 'One path per stream: its events, described by its latest schema.' }],
    paths: {
      '/v1/events': {
        post: {
          summary: 'Produce events',
          description:
            'One event or an array. Each is validated against the schema version its `$schema` names, checked ' +
            "against its stream's `schema_title`, enriched (meta.id, meta.dt, meta.request_id, user agent, client IP " +
            'where the schema has them) and appended durably. The reason phrase of the status line says how many ' +
            'were accepted.',
          parameters: [
            { name: 'hasty', in: 'query', schema: { type: 'string' }, description: 'Any non-empty value: answer 202 before processing.' },
            { name: 'schema_uri', in: 'query', schema: { type: 'string' }, description: '$schema for events that have none.' },
            { name: 'stream', in: 'query', schema: { type: 'string' }, description: 'meta.stream for events that have none.' },
          ],
          requestBody: {
            required: true,
            content: Object.fromEntries(
              ['application/json', 'text/plain', 'application/reports+json', 'application/cloudevents+json', 'application/cloudevents-batch+json'].map(
                (type) => [type, { schema: { oneOf: [{ type: 'object' }, { type: 'array', items: { type: 'object' } }] }, ...(type === 'application/json' ? { example: [exampleEvent] } : {}) }],
              ),
            ),
          },
          responses: {
            '201': { description: 'Every event was accepted (empty body).' },
            '202': { description: '`?hasty`: received, processed after answering (empty body).' },
            '207': { description: 'Some events were accepted, some not.', content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchFailures' } } } },
            '400': { description: 'Every event was invalid (`{invalid}`), or the body was empty, not JSON, not UTF-8 or too deep (problem).', content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchFailures' } }, 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
            '413': { ...problem, description: 'The body is larger than intake.max_body_bytes.' },
            '415': { ...problem, description: 'Unsupported content type.' },
            '500': { description: 'No event was accepted and some failed on our side.', content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchFailures' } } } },
          },
        },
      },
      '/beacon/event': {
        get: {
          summary: 'Legacy EventLogging beacon',
          description:
            'The query string is a URL-encoded JSON EventCapsule (`{schema, event, webHost, wiki, revision}`), then `;`. ' +
            'Answered 204 at once; the capsule then becomes an event of `/analytics/legacy/<lowercase schema>/<version>` ' +
            '(intake.beacon.schemas) in the stream `eventlogging_<Schema>`, processed like any other. Bad capsules are counted, not answered.',
          responses: { '204': { description: 'Received (empty body).' }, '414': { ...problem, description: 'The URL is longer than intake.beacon.max_url_length (2,000).' } },
        },
      },
      '/v1/_test/events': { get: { summary: 'Produce the configured test events (readiness check)', responses: { '201': { description: 'Accepted.' }, '404': problem } } },
      '/repositories': { get: { summary: 'Schema repositories', responses: { '200': { description: 'JSON list, or HTML for browsers.' } } } },
      '/repositories/{repo}/jsonschema/{path}': {
        get: {
          summary: 'A schema version, `latest`, or a folder listing',
          parameters: [
            { name: 'repo', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'path', in: 'path', required: true, schema: { type: 'string' }, description: 'e.g. eventplane/test/event/1.0.0, eventplane/test/event/latest.yaml' },
          ],
          responses: { '200': { description: 'YAML or JSON (by extension or Accept).' }, '304': { description: 'Not modified (ETag).' }, '400': problem, '404': problem },
        },
      },
      '/v1/stream-configs/{streams}': {
        get: {
          summary: 'Stream configs by name (comma or pipe separated; empty for all)',
          parameters: [{ name: 'streams', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'Settings keyed by stream name.' } },
        },
      },
      '/w/api.php': {
        get: {
          summary: "Stream configs, in MediaWiki's action=streamconfigs shape",
          parameters: [
            { name: 'action', in: 'query', required: true, schema: { const: 'streamconfigs' } },
            { name: 'format', in: 'query', schema: { const: 'json' } },
            { name: 'streams', in: 'query', schema: { type: 'string' }, description: 'a|b|c' },
            { name: 'constraints', in: 'query', schema: { type: 'string' }, description: 'key=value|key2[sub]=value2' },
          ],
          responses: { '200': { description: '{"streams":{…}}' }, '400': { description: 'MediaWiki-shaped error.' } },
        },
      },
      ...streamPaths,
      '/v2/ui': { get: { summary: 'Live viewer: pick streams, type a filter, watch events and their rate', responses: { '200': { description: 'HTML page (no external assets).' } } } },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: '{"status":"ok"}' } } } },
      '/readyz': { get: { summary: 'Readiness', responses: { '200': { description: 'Ready.' }, '503': { description: 'Not ready.' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics (eventplane_*)', responses: { '200': { description: 'text/plain exposition format' } } } },
      '/_info': { get: { summary: 'Name and version', responses: { '200': { description: 'JSON' } } } },
    },
    components: {
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'code', 'detail'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            code: { type: 'string', enum: Object.keys(errorCodes) },
            detail: { type: 'string' },
            canRetry: { type: 'boolean' },
            details: { type: 'object' },
          },
        },
        Item: {
          type: 'object',
          description: "An event that was not accepted: the event (after defaults were filled in) and why.",
          properties: {
            status: { enum: ['invalid', 'error'] },
            event: {},
            context: {
              type: 'object',
              properties: {
                code: { type: 'string' },
                message: { type: 'string' },
                errors: { type: 'array', description: "Validator errors as EventGate (ajv 6) gave them: keyword, dataPath, schemaPath, params, message (\"should be string\"); plus ajv 8's instancePath." },
                errorsText: { type: 'string' },
                canRetry: { type: 'boolean' },
              },
            },
          },
        },
        BatchFailures: {
          type: 'object',
          properties: {
            invalid: { type: 'array', items: { $ref: '#/components/schemas/Item' } },
            error: { type: 'array', items: { $ref: '#/components/schemas/Item' } },
          },
        },
      },
    },
  }
}

interface Operation {
  summary?: string
  description?: string
  parameters?: Array<{ name: string; in: string; description?: string }>
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: { title?: string; required?: string[]; properties?: Record<string, { type?: string | string[]; description?: string }> }; example?: unknown }> }>
}

/** A self-contained page describing the API (no scripts or assets from other hosts). */
export function openApiHtml(document: Record<string, unknown>): string {
  const esc = (text: unknown) => String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  const paths = document['paths'] as Record<string, Record<string, Operation>>
  // Streams: the fields of the events, from the stream's latest schema.
  const fields = (op: Operation): string => {
    const content = op.responses?.['200']?.content?.['text/event-stream']
    const properties = content?.schema?.properties
    if (properties === undefined) return ''
    const required = new Set(content?.schema?.required ?? [])
    const rows = Object.entries(properties)
      .map(([name, p]) => `<tr><td><code>${esc(name)}</code>${required.has(name) ? ' *' : ''}</td><td>${esc(Array.isArray(p.type) ? p.type.join(' | ') : p.type)}</td><td>${esc(p.description)}</td></tr>`)
      .join('')
    return `<h3>Event fields (${esc(content?.schema?.title)})</h3><table><tr><th>field</th><th>type</th><th>description</th></tr>${rows}</table>${
      content?.example === undefined ? '' : `<details><summary>Example</summary><pre>${esc(JSON.stringify(content.example, null, 2))}</pre></details>`
    }`
  }
  const sections = Object.entries(paths)
    .flatMap(([path, methods]) =>
      Object.entries(methods).map(
        ([method, op]) => `<section><h2><span class="m ${esc(method)}">${esc(method.toUpperCase())}</span> <code>${esc(path)}</code></h2>
<p>${esc(op.summary)}</p>${op.description ? `<p class="d">${esc(op.description)}</p>` : ''}
${op.parameters?.length ? `<h3>Parameters</h3><ul>${op.parameters.map((p) => `<li><code>${esc(p.name)}</code> (${esc(p.in)}) ${esc(p.description)}</li>`).join('')}</ul>` : ''}
<h3>Responses</h3><ul>${Object.entries(op.responses ?? {}).map(([status, r]) => `<li><b>${esc(status)}</b> ${esc(r.description)}</li>`).join('')}</ul>${fields(op)}</section>`,
      ),
    )
    .join('\n')
  const info = document['info'] as { title: string; version: string; description: string }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(info.title)} API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
section{border-top:1px solid #ddd;padding:.5rem 0}code{background:#f4f4f4;padding:0 .2rem}.m{font-size:.8rem;padding:.1rem .4rem;border-radius:3px;color:#fff}
.get{background:#2a7ae2}.post{background:#2e9b4f}.d{color:#555}h2{font-size:1.1rem}h3{font-size:.95rem;margin-bottom:.2rem}
table{border-collapse:collapse;font-size:.9rem}td,th{border-bottom:1px solid #eee;padding:.15rem .5rem;text-align:left;vertical-align:top}pre{background:#f7f7f7;padding:.5rem;overflow:auto}</style></head>
<body><h1>${esc(info.title)} ${esc(info.version)}</h1><p>${esc(info.description)}</p>
<p>The machine-readable document: <a href="/?spec"><code>/?spec</code></a> (OpenAPI 3.1).</p>
${sections}
</body></html>
`
}
