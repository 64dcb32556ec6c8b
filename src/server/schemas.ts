import { readFileSync } from 'node:fs'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { createSchemaSource, openRepository, type SchemaRepository, type SchemaSource } from '../schemas/index.ts'

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** The config's schema repositories, and the source that finds schemas by URI across them (schemas.base_uris). */
export function openSchemas(config: Readonly<Config>): { repositories: SchemaRepository[]; schemas: SchemaSource } {
  const repositories = config.schemas.repositories.map((r) => openRepository(r.path, { name: r.name, maxFileBytes: config.schemas.max_file_bytes }))
  const schemas = createSchemaSource({
    baseUris: resolveBaseUris(config, repositories),
    timeoutMs: config.schemas.remote_timeout_ms,
    maxBytes: config.schemas.max_file_bytes,
    userAgent: `eventplane/${version}`,
  })
  return { repositories, schemas }
}

/** `schemas.base_uris` with `repo:<name>` replaced by that repository's schema folder; by default, every repository. */
export function resolveBaseUris(config: Readonly<Config>, repositories: readonly SchemaRepository[]): string[] {
  const configured = config.schemas.base_uris
  if (configured === undefined) return repositories.map((r) => r.schemaDir)
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
