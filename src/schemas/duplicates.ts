import { jsonEqual, type JsonObject } from '../core/objects.ts'
import { indexRepository } from './repository-index.ts'
import { diffSchemas } from './diff.ts'
import type { SchemaRepository } from './repository.ts'

/** One `$id` defined with different content by more than one repository. */
export interface DuplicateId {
  id: string
  /**
   * `validation`: the definitions accept different events; `annotations`: they differ only in
   * descriptions, titles, comments or examples.
   */
  kind: 'validation' | 'annotations'
  /** The repositories defining it, in the order given (the order of precedence). */
  repositories: string[]
  /** JSON Pointer of the first difference between the first two definitions. */
  firstDifference: string
}

const annotationKeys = new Set(['description', 'title', '$comment', 'examples'])
const nameMaps = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependencies'])

/** Whether a JSON Pointer into a schema lies in an annotation (`/properties/title/type` is not: that is a field named title). */
function isAnnotation(path: string): boolean {
  const segments = path.split('/').slice(1)
  return segments.some((segment, i) => annotationKeys.has(segment) && !nameMaps.has(segments[i - 1] ?? ''))
}

/**
 * `$id`s that more than one repository defines with different content: each repository read
 * once (one walk, each version file parsed once). Repositories that agree on an `$id` are fine:
 * only differing definitions are listed, in `repositories` order.
 */
export async function findDuplicateIds(repositories: readonly SchemaRepository[]): Promise<DuplicateId[]> {
  const byId = new Map<string, Array<{ repository: string; schema: JsonObject }>>()
  for (const repository of repositories) {
    const index = await indexRepository(repository)
    for (const title of index.titles.values()) {
      for (const version of title.versions) {
        let schema: JsonObject
        try {
          schema = await index.read(version.path)
        } catch {
          continue // lint reports it; it defines nothing that can be served
        }
        const id = schema['$id']
        if (typeof id !== 'string') continue
        const list = byId.get(id) ?? []
        // A repository listing one $id twice (two content types) counts once.
        if (!list.some((d) => d.repository === repository.name)) list.push({ repository: repository.name, schema })
        byId.set(id, list)
      }
    }
  }
  const duplicates: DuplicateId[] = []
  for (const [id, definitions] of byId) {
    if (definitions.length < 2) continue
    const first = definitions[0]!.schema
    const differing = definitions.filter((d) => !jsonEqual(d.schema, first))
    if (differing.length === 0) continue
    const entries = differing.flatMap((d) => diffSchemas(first, d.schema))
    const validation = entries.some((e) => !isAnnotation(e.path))
    duplicates.push({
      id,
      kind: validation ? 'validation' : 'annotations',
      repositories: [definitions[0]!.repository, ...differing.map((d) => d.repository)],
      firstDifference: (entries.find((e) => !validation || !isAnnotation(e.path)) ?? entries[0])?.path || '/',
    })
  }
  return duplicates.sort((a, b) => (a.id < b.id ? -1 : 1))
}
