import { createHash } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { basename } from 'node:path'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { EventplaneError } from '../core/errors.ts'
import { acceptRanges, prefersHtml } from '../core/http.ts'
import { isLinkName, parseSchemaText, readLimited, resolveInFolder, safeSegments, semverName } from './files.ts'
import { serializeSchema } from './materialize.ts'
import { checkCompatibility } from './compat.ts'
import { diffSchemas } from './diff.ts'
import { listVersions, readSchemaFile, type SchemaRepository } from './repository.ts'
import { indexRepository } from './repository-index.ts'
import semver from 'semver'

export interface SchemaServiceOptions {
  repositories: readonly SchemaRepository[]
  /** max-age for versioned files, which never change once published. */
  cacheMaxAgeS: number
  /** Bytes of rendered files kept in memory. */
  cacheBytes?: number
}

/** max-age for what can change: `latest`, `current.yaml`, listings. */
const mutableMaxAgeS = 60

type Format = 'yaml' | 'json'

interface Rendered {
  body: Buffer
  contentType: string
  etag: string
  immutable: boolean
}

/**
 * The schema service: `GET /repositories/{repo}/jsonschema/{title…}/{version|latest}[.yaml|.json]`,
 * directory listings as JSON or HTML, ETags, and long-lived caching for versioned files.
 * No path outside a repository's schema folder can be read (see files.ts).
 *
 * @example
 * app.register(schemaRoutes, { repositories: [openRepository('schemas', { name: 'primary' })], cacheMaxAgeS: 31536000 })
 * // curl -H 'Accept: application/json' localhost:8192/repositories/primary/jsonschema/eventplane/test/event/latest
 */
export async function schemaRoutes(app: FastifyInstance, options: SchemaServiceOptions): Promise<void> {
  const byName = new Map(options.repositories.map((r) => [r.name, r]))
  const cache = new RenderCache(options.cacheBytes ?? 64 * 1024 * 1024)
  const immutableControl = `public, max-age=${options.cacheMaxAgeS}, immutable`
  const mutableControl = `public, max-age=${mutableMaxAgeS}`

  app.get('/repositories', async (request, reply) => {
    const entries = [...byName.keys()].sort().map((name) => ({ name, type: 'directory' as const }))
    return sendListing(request, reply, '/repositories/', entries)
  })

  app.get('/repositories/:repo', async (request, reply) => {
    const repository = repositoryFor(request)
    return sendListing(request, reply, `/repositories/${repository.name}/`, [{ name: 'jsonschema', type: 'directory' }])
  })

  // Every title of a repository with its published versions, for the console's schema browser
  // (one walk of the folder per request: repositories hold hundreds of titles, not millions).
  app.get('/repositories/:repo/titles', async (request, reply) => {
    const repository = repositoryFor(request)
    const out = [...(await indexRepository(repository)).titles.values()].map(({ title, versions }) => ({
      title,
      versions: versions.map((v) => v.version),
      latest: versions.at(-1)?.version ?? null,
      href: `/repositories/${repository.name}/jsonschema/${title}/`,
    }))
    return reply.header('cache-control', mutableControl).type('application/json; charset=utf-8').send(out)
  })

  // Two versions of a title: what changed (JSON pointers), and within one major whether the newer
  // is compatible with the older, with the reasons when not (the checks of `schema compat`).
  app.get('/repositories/:repo/diff', async (request, reply) => {
    const repository = repositoryFor(request)
    const query = request.query as Record<string, unknown>
    const [title, from, to] = (['title', 'from', 'to'] as const).map((key) => {
      const value = query[key]
      if (typeof value !== 'string' || value === '') throw new EventplaneError('EVP_BAD_REQUEST', `give ?${key}=; e.g. ?title=eventplane/test/event&from=1.0.0&to=1.1.0`)
      return value
    }) as [string, string, string]
    safeSegments(title)
    const versions = await listVersions(repository, title)
    const find = (version: string) => {
      const found = versions.find((v) => v.version === version)
      if (found === undefined) {
        throw new EventplaneError('EVP_SCHEMA_NOT_FOUND', `no version ${version} of ${title} in schema repository ${repository.name}; versions: ${versions.map((v) => v.version).join(', ') || '(none)'}`)
      }
      return found
    }
    const [older, newer] = await Promise.all([readSchemaFile(repository, find(from).path), readSchemaFile(repository, find(to).path)])
    const sameMajor = semver.major(from) === semver.major(to)
    const verdict = sameMajor && semver.lt(from, to) ? checkCompatibility(older, newer, { rules: repository.compat.rules }) : undefined
    return reply.header('cache-control', mutableControl).type('application/json; charset=utf-8').send({
      title,
      from,
      to,
      entries: diffSchemas(older, newer),
      compatible: verdict?.compatible ?? null,
      rules: repository.compat.rules,
      problems: verdict?.problems ?? [],
      note: verdict !== undefined ? undefined : sameMajor ? `${to} is not newer than ${from}: only a newer version is checked against an older one` : `${from} and ${to} are different majors: a new major may break compatibility, and is not checked`,
    })
  })

  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    const repository = repositoryFor(request)
    const path = (request.params as { '*'?: string })['*'] ?? ''
    const format = negotiate(request, path.slice(path.lastIndexOf('/') + 1))
    // Only published versions are cached, under the exact path that was checked and rendered
    // once, so a hit needs neither the path check nor the filesystem. `latest` and listings
    // are resolved on every request.
    const key = `${repository.name}\0${path}\0${format}`
    let rendered = cache.get(key)
    if (rendered === undefined) {
      const segments = safeSegments(path)
      const made = await render(repository, segments, format)
      if (made.kind === 'listing') {
        return sendListing(request, reply, `/repositories/${repository.name}/jsonschema/${segments.map((s) => s + '/').join('')}`, made.entries)
      }
      rendered = made.rendered
      if (rendered.immutable) cache.set(key, rendered)
    }
    const types = rendered.contentType.startsWith('application/json') ? jsonTypes : yamlTypes
    if (!accepts(request.headers.accept, types)) {
      throw new EventplaneError('EVP_NOT_ACCEPTABLE', `this schema is served as ${types[0]} (by its extension or Accept); Accept ${JSON.stringify(String(request.headers.accept).slice(0, 200))} allows neither`)
    }
    reply.header('etag', rendered.etag)
    reply.header('cache-control', rendered.immutable ? immutableControl : mutableControl)
    reply.header('vary', 'Accept')
    if (request.headers['if-none-match'] === rendered.etag) return reply.code(304).send()
    // A browser following a link from the listing would download application/yaml as a file:
    // it gets the same text as text/plain, which it shows.
    const shown = rendered.contentType.startsWith('application/yaml') && prefersHtml(request.headers.accept) ? 'text/plain; charset=utf-8' : rendered.contentType
    return reply.type(shown).send(rendered.body)
  }
  app.get('/repositories/:repo/jsonschema', serve)
  app.get('/repositories/:repo/jsonschema/*', serve)

  function repositoryFor(request: FastifyRequest): SchemaRepository {
    const name = (request.params as { repo: string }).repo
    const repository = byName.get(name)
    if (repository === undefined) {
      throw new EventplaneError('EVP_REPOSITORY_NOT_FOUND', `no schema repository named ${JSON.stringify(name)}; see /repositories`, {
        details: { repository: name },
      })
    }
    return repository
  }

  function sendListing(request: FastifyRequest, reply: FastifyReply, base: string, entries: ListingEntry[]) {
    if (!accepts(request.headers.accept, [...jsonTypes, 'text/html'])) {
      throw new EventplaneError('EVP_NOT_ACCEPTABLE', `listings are served as application/json or text/html; Accept ${JSON.stringify(String(request.headers.accept).slice(0, 200))} allows neither`)
    }
    reply.header('cache-control', mutableControl).header('vary', 'Accept')
    if (prefersHtml(request.headers.accept)) return reply.type('text/html; charset=utf-8').send(listingHtml(base, entries))
    return reply.type('application/json; charset=utf-8').send(entries.map((e) => ({ ...e, href: base + e.name + (e.type === 'directory' ? '/' : '') })))
  }
}

type ListingEntry = { name: string; type: 'directory' | 'file' }

type Made = { kind: 'listing'; entries: ListingEntry[] } | { kind: 'file'; rendered: Rendered }

async function render(repository: SchemaRepository, segments: string[], format: Format): Promise<Made> {
  const relative = segments.join('/')
  const name = segments.at(-1) ?? ''
  let entry = await resolveInFolder(repository.schemaDir, relative)
  // `1.0.0.json` when only YAML is materialized: convert from the YAML sibling.
  let fromYaml = false
  if (entry === undefined && name.endsWith('.json')) {
    entry = await resolveInFolder(repository.schemaDir, relative.slice(0, -'.json'.length) + '.yaml')
    fromYaml = entry !== undefined
  }
  // `1.0.0` where no extensionless entry was made: the materialized file itself.
  if (entry === undefined && name !== '' && !/\.(yaml|json)$/.test(name)) {
    for (const ext of repository.options.contentTypes) {
      entry = await resolveInFolder(repository.schemaDir, `${relative}.${ext}`)
      if (entry !== undefined) break
    }
  }
  if (entry === undefined) {
    throw new EventplaneError('EVP_SCHEMA_NOT_FOUND', `no ${relative || 'folder'} in schema repository ${repository.name}`, {
      details: { repository: repository.name, path: relative },
    })
  }
  if (entry.isDirectory) {
    const dirents = await readdir(entry.real, { withFileTypes: true })
    const entries = dirents
      .filter((d) => !d.name.startsWith('.'))
      .map((d) => ({ name: d.name, type: d.isDirectory() ? ('directory' as const) : ('file' as const) }))
      .sort((a, b) => (a.type === b.type ? (a.name < b.name ? -1 : 1) : a.type === 'directory' ? -1 : 1))
    return { kind: 'listing', entries }
  }
  const raw = await readLimited(entry.real, repository.maxFileBytes)
  const storedAs: Format = /\.json$/.test(entry.real) ? 'json' : 'yaml'
  const wanted: Format = name.endsWith('.json') || fromYaml ? 'json' : name.endsWith('.yaml') ? 'yaml' : format
  let body = raw
  if (wanted !== storedAs || fromYaml) {
    const schema = parseSchemaText(raw.toString('utf8'), `${repository.name}/${relative}`)
    body = Buffer.from(serializeSchema(schema, wanted))
  }
  return {
    kind: 'file',
    rendered: {
      body,
      contentType: wanted === 'json' ? 'application/json; charset=utf-8' : 'application/yaml; charset=utf-8',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`,
      immutable: isImmutable(name, basename(entry.path)),
    },
  }
}

/** A published version (`1.2.0`, `1.2.0.yaml`) never changes; `latest` and `current.yaml` do. */
function isImmutable(requested: string, resolved: string): boolean {
  const stem = requested.replace(/\.(yaml|json)$/, '')
  return semverName.test(stem) && !(isLinkName(requested) && requested.startsWith('latest')) && semverName.test(resolved.replace(/\.(yaml|json)$/, ''))
}

const jsonTypes = ['application/json', 'application/schema+json']
const yamlTypes = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml']

function negotiate(request: FastifyRequest, name: string | undefined): Format {
  if (name?.endsWith('.json')) return 'json'
  if (name?.endsWith('.yaml')) return 'yaml'
  const accept = request.headers.accept ?? ''
  const json = quality(accept, jsonTypes)
  const yaml = quality(accept, yamlTypes)
  return json > yaml ? 'json' : 'yaml'
}

/** Whether `Accept` (absent: anything) allows one of `types`, exactly or through a wildcard. */
function accepts(accept: string | undefined, types: readonly string[]): boolean {
  if (accept === undefined || accept.trim() === '') return true
  return acceptRanges(accept).some(({ range: r }) => r === '*/*' || types.some((t) => t === r || (r.endsWith('/*') && t.startsWith(r.slice(0, -1)))))
}

/** The q-value the Accept header gives to the best of `types` (wildcards count less than exact). */
function quality(accept: string, types: string[]): number {
  let best = 0
  for (const { range, q } of acceptRanges(accept)) if (types.includes(range) && q > best) best = q
  return best
}


function listingHtml(base: string, entries: ListingEntry[]): string {
  const crumbs = base
    .split('/')
    .filter(Boolean)
    .map((part, i, all) => `<a href="/${all.slice(0, i + 1).map(encodeURIComponent).join('/')}/">${escapeHtml(part)}</a>`)
    .join(' / ')
  const rows = entries
    .map((e) => {
      const href = base + encodeURIComponent(e.name) + (e.type === 'directory' ? '/' : '')
      return `<li class="${e.type}"><a href="${escapeHtml(href)}">${escapeHtml(e.name)}${e.type === 'directory' ? '/' : ''}</a></li>`
    })
    .join('\n')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(base)} · Eventplane schemas</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
ul{list-style:none;padding:0}li{padding:.15rem 0}li.directory a{font-weight:600}a{color:#0645ad;text-decoration:none}a:hover{text-decoration:underline}
nav{color:#666;margin-bottom:1rem}</style></head>
<body><nav>${crumbs}</nav><h1>${escapeHtml(base)}</h1>
<ul>
${rows}
</ul>
<p><small>${consoleLink(base, entries)}JSON: request this URL with <code>Accept: application/json</code>.</small></p></body></html>
`
}

/** A link to the console's page for the title whose folder this is (it has versions), else to its schema list. */
function consoleLink(base: string, entries: ListingEntry[]): string {
  const title = /^\/repositories\/([^/]+)\/jsonschema\/(.+)\/$/.exec(base)
  const versioned = entries.some((e) => e.type !== 'directory' && /^\d+\.\d+\.\d+(\.\w+)?$/.test(e.name))
  const href = title !== null && versioned ? `/#/schemas/${title[1]}/${title[2]}` : '/#/schemas'
  return `<a href="${escapeHtml(href)}">${versioned ? 'Fields, examples and versions' : 'Every schema'} in the console</a>. `
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/**
 * Rendered published versions, bounded by total bytes; the oldest entries go first. First in,
 * first out rather than least recently used: a hit is then one Map lookup, and a dropped entry
 * costs one file read to bring back.
 */
class RenderCache {
  readonly #entries = new Map<string, Rendered>()
  #bytes = 0
  constructor(readonly maxBytes: number) {}

  get(key: string): Rendered | undefined {
    return this.#entries.get(key)
  }

  set(key: string, value: Rendered): void {
    if (value.body.length > this.maxBytes / 4) return
    const old = this.#entries.get(key)
    if (old !== undefined) this.#bytes -= old.body.length
    this.#entries.delete(key)
    this.#entries.set(key, value)
    this.#bytes += value.body.length
    for (const [oldest, entry] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break
      this.#entries.delete(oldest)
      this.#bytes -= entry.body.length
    }
  }
}

