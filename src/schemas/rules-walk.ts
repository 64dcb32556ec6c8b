import { isPlainObject, type JsonObject } from '../core/objects.ts'
import { childPointer } from './rules-pointer.ts'

// The same keyword lists as json-schema-traverse 1.x, which jsonschema-tools walks schemas with.
const schemaKeywords = ['additionalItems', 'items', 'contains', 'additionalProperties', 'propertyNames', 'not', 'if', 'then', 'else']
const schemaListKeywords = ['items', 'allOf', 'anyOf', 'oneOf']
const schemaMapKeywords = ['$defs', 'definitions', 'properties', 'patternProperties', 'dependencies']

/**
 * Calls `visit` for the schema and every subschema below it, depth first, with the JSON
 * Pointer of each. Values of non-schema keywords (`enum`, `default`, `examples`, …) are not
 * entered, so an example that looks like a schema is never mistaken for one.
 */
export function walkSchemas(schema: unknown, visit: (node: JsonObject, path: string) => void, path = ''): void {
  if (!isPlainObject(schema)) return
  visit(schema, path)
  for (const key of Object.keys(schema)) {
    const value = schema[key]
    const at = childPointer(path, key)
    if (Array.isArray(value)) {
      if (schemaListKeywords.includes(key)) value.forEach((item, i) => walkSchemas(item, visit, childPointer(at, i)))
    } else if (schemaKeywords.includes(key)) {
      walkSchemas(value, visit, at)
    } else if (schemaMapKeywords.includes(key) && isPlainObject(value)) {
      for (const name of Object.keys(value)) walkSchemas(value[name], visit, childPointer(at, name))
    }
  }
}
