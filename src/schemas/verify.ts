import { jsonEqual } from '../core/objects.ts'
import { diffSchemas } from './diff.ts'
import { materializeSchema } from './materialize.ts'
import { listVersions, readSchemaFile, schemaVersion, type SchemaFile, type SchemaRepository } from './repository.ts'
import type { SchemaSource } from './source.ts'

export type CurrentState =
  | { state: 'materialized'; version: string; path: string }
  | { state: 'not-materialized'; version: string }
  | { state: 'changed'; version: string; path: string; firstDifference: string }

/**
 * Whether a `current.yaml` is published: its version is materialized and materializing it
 * now gives the same JSON value as that file. When current.yaml has no examples the file's
 * (generated, and in jsonschema-tools random) examples are left out of the comparison.
 */
export async function verifyCurrent(repository: SchemaRepository, source: SchemaSource, file: SchemaFile): Promise<CurrentState> {
  const version = schemaVersion(file.schema, repository.options.schemaVersionField, file.path)
  const entry = (await listVersions(repository, file.title)).find((v) => v.version === version)
  if (entry === undefined) return { state: 'not-materialized', version }
  const { schema } = await materializeSchema(file.schema, {
    source,
    shouldDereference: repository.options.shouldDereference,
    enforcedNumericBounds: repository.options.enforcedNumericBounds,
    shouldGenerateExample: false,
    location: file.path,
  })
  const published = await readSchemaFile(repository, entry.path)
  if (file.schema['examples'] === undefined) {
    delete schema['examples']
    delete published['examples']
  }
  if (jsonEqual(schema, published)) return { state: 'materialized', version, path: entry.path }
  return { state: 'changed', version, path: entry.path, firstDifference: diffSchemas(published, schema)[0]?.path || '/' }
}
