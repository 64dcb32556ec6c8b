import semver from 'semver'

export interface SchemaIdParts {
  title: string
  version: string
}

/**
 * Splits a schema `$id` of the form `/<title>/<semver>` (the form jsonschema-tools writes);
 * undefined for anything else. `semver.coerce` is deliberately not used: `/a/1.0` is not a
 * valid id even though jsonschema-tools would read a version out of it.
 */
export function parseSchemaId(id: unknown): SchemaIdParts | undefined {
  if (typeof id !== 'string') return undefined
  const match = /^\/(.+)\/([^/]+)$/.exec(id)
  if (match === null || semver.valid(match[2]!) !== match[2]) return undefined
  return { title: match[1]!, version: match[2]! }
}
