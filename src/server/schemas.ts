import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { Gauge, type Registry } from 'prom-client'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { createSchemaSource, findDuplicateIds, openRepository, type CompatRules, type DuplicateId, type SchemaRepository, type SchemaSource } from '../schemas/index.ts'

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** The config's schema repositories, and the source that finds schemas by URI across them (schemas.base_uris). */
export function openSchemas(config: Readonly<Config>): { repositories: SchemaRepository[]; schemas: SchemaSource } {
  const repositories = config.schemas.repositories.map((r) => openRepository(r.path, { name: r.name, maxFileBytes: config.schemas.max_file_bytes, compatRules: r.compat_rules as CompatRules | undefined }))
  const schemas = createSchemaSource({
    baseUris: resolveBaseUris(config, repositories),
    timeoutMs: config.schemas.remote_timeout_ms,
    maxBytes: config.schemas.max_file_bytes,
    userAgent: `eventplane/${version}`,
  })
  return { repositories, schemas }
}

/** The schema folder bundled with Eventplane (defaults/schemas). */
const bundledSchemaDir = (() => {
  try {
    return realpathSync(fileURLToPath(new URL('../../defaults/schemas/jsonschema', import.meta.url)))
  } catch {
    return undefined
  }
})()

/** Whether a repository is the one bundled with Eventplane. */
export function isBundled(repository: SchemaRepository): boolean {
  return repository.schemaDir === bundledSchemaDir
}

/**
 * `schemas.base_uris` with `repo:<name>` replaced by that repository's schema folder. By
 * default every repository in the order configured, except the bundled one, which comes last:
 * it never shadows a mounted repository that defines the same `$id`.
 */
export function resolveBaseUris(config: Readonly<Config>, repositories: readonly SchemaRepository[]): string[] {
  const configured = config.schemas.base_uris
  if (configured === undefined) return [...repositories.filter((r) => !isBundled(r)), ...repositories.filter(isBundled)].map((r) => r.schemaDir)
  return configured.map((uri) => {
    if (!uri.startsWith('repo:')) return uri
    const repository = repositories.find((r) => r.name === uri.slice('repo:'.length))
    if (repository === undefined) {
      throw new EventplaneError('EVP_CONFIG_INVALID', `schemas.base_uris: ${uri} names no repository in schemas.repositories`, {
        details: { key: 'schemas.base_uris' },
      })
    }
    return repository.schemaDir
  })
}

/** A `$id` several repositories define differently, with the repository whose definition is served. */
export interface ServedDuplicate extends DuplicateId {
  /** The first of them in base URI order (schemas.base_uris). */
  served: string | undefined
  /** What differs and which is served: `(they accept different events; first difference at /x): b's is served`. */
  what: string
}

/** `$id`s that several repositories define differently (findDuplicateIds), each with the repository served. */
export async function servedDuplicates(repositories: readonly SchemaRepository[], baseUris: readonly string[]): Promise<ServedDuplicate[]> {
  if (repositories.length < 2) return []
  const precedence = (name: string) => {
    const repository = repositories.find((r) => r.name === name)
    const at = repository === undefined ? -1 : baseUris.indexOf(repository.schemaDir)
    return at === -1 ? Infinity : at
  }
  return (await findDuplicateIds(repositories)).map((duplicate) => {
    const served = [...duplicate.repositories].sort((a, b) => precedence(a) - precedence(b))[0]
    const kind = duplicate.kind === 'validation' ? 'they accept different events' : 'descriptions or examples only'
    return { ...duplicate, served, what: `(${kind}; first difference at ${duplicate.firstDifference}): ${served}'s is served` }
  })
}

/**
 * Looks for `$id`s that several repositories define differently, in the background: each is
 * logged once, saying which repository's definition is served (the first base URI that has it),
 * and counted in `eventplane_schema_duplicate_ids`. Resolves with what it found.
 */
export async function warnDuplicateIds(
  repositories: readonly SchemaRepository[],
  baseUris: readonly string[],
  logger: Logger,
  registry: Registry,
): Promise<DuplicateId[]> {
  const gauge = new Gauge({
    name: 'eventplane_schema_duplicate_ids',
    help: "Schema $ids that more than one repository defines differently, by kind: validation (they accept different events) or annotations (descriptions, examples). The first repository in schemas.base_uris wins.",
    labelNames: ['kind'] as const,
    registers: [registry],
  })
  gauge.set({ kind: 'validation' }, 0)
  gauge.set({ kind: 'annotations' }, 0)
  let found: ServedDuplicate[]
  try {
    found = await servedDuplicates(repositories, baseUris)
  } catch (error) {
    logger.warn({ err: error }, 'could not look for $ids that several schema repositories define differently')
    return []
  }
  for (const kind of ['validation', 'annotations'] as const) gauge.set({ kind }, found.filter((d) => d.kind === kind).length)
  const shown = 20
  for (const { id, kind, repositories: names, served, firstDifference, what } of found.slice(0, shown)) {
    logger.warn(
      { id, kind, repositories: names, served, first_difference: firstDifference },
      `schema ${id} is defined differently by repositories ${names.join(' and ')} ${what} (schemas.base_uris sets the order)`,
    )
  }
  if (found.length > shown) logger.warn({ more: found.length - shown }, `${found.length - shown} more $ids are defined differently by several repositories (eventplane_schema_duplicate_ids)`)
  return found
}
