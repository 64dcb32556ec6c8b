import { LineCounter, parseDocument, isMap, isNode, isScalar, visit, type Document } from 'yaml'
import { EventplaneError, type ErrorCode } from './errors.ts'

export interface SourcePosition {
  line: number
  column: number
}

export interface ParsedYaml {
  readonly value: unknown
  /** Line and column (1-based) of the node at a JSON path, when the document has one. */
  locate(path: ReadonlyArray<string | number>): SourcePosition | undefined
  /**
   * Position of the mapping key at `path` rather than of its value, so "unknown key" and
   * "missing key" errors point at the key's own line; falls back to `locate`.
   */
  locateKey(path: ReadonlyArray<string | number>): SourcePosition | undefined
}

export interface ParseYamlOptions {
  /** Name used in error messages: a file path or a URL. */
  source: string
  /** Code thrown when the text is not YAML. */
  code: ErrorCode
}

/**
 * Parses YAML 1.2 (so JSON too) into plain data, keeping positions for later error messages.
 * Duplicate keys are errors, and alias expansion is bounded so that a small file cannot
 * expand into a huge value.
 */
export function parseYaml(text: string, options: ParseYamlOptions): ParsedYaml {
  const lineCounter = new LineCounter()
  // yaml's own uniqueKeys check compares every key with every other (quadratic: seconds for a
  // 20,000-stream config), so duplicates are found here in one pass instead.
  const doc: Document = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false, strict: true })
  const problem = doc.errors[0]
  if (problem !== undefined) {
    const at = lineCounter.linePos(problem.pos[0])
    throw new EventplaneError(options.code, `${options.source}:${at.line}:${at.col}: ${firstLine(problem.message)}`, {
      details: { source: options.source, line: at.line, column: at.col },
    })
  }
  const duplicate = findDuplicateKey(doc)
  if (duplicate !== undefined) {
    const at = lineCounter.linePos(duplicate.offset)
    throw new EventplaneError(options.code, `${options.source}:${at.line}:${at.col}: map keys must be unique; ${JSON.stringify(duplicate.key)} appears twice`, {
      details: { source: options.source, line: at.line, column: at.col },
    })
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: 100 })
  } catch (error) {
    throw new EventplaneError(options.code, `${options.source}: ${(error as Error).message}`, {
      cause: error,
      details: { source: options.source },
    })
  }
  const locate = (path: ReadonlyArray<string | number>): SourcePosition | undefined => {
    // Walk up to the nearest node that exists, so a missing key points at its parent.
    for (let depth = path.length; depth >= 0; depth--) {
      const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true)
      if (isNode(node) && node.range) {
        const at = lineCounter.linePos(node.range[0])
        return { line: at.line, column: at.col }
      }
    }
    return undefined
  }
  return {
    value,
    locate,
    locateKey(path) {
      const parent = path.length <= 1 ? doc.contents : doc.getIn(path.slice(0, -1), true)
      const last = path[path.length - 1]
      if (isMap(parent)) {
        for (const pair of parent.items) {
          if (isScalar(pair.key) && String(pair.key.value) === String(last) && pair.key.range) {
            const at = lineCounter.linePos(pair.key.range[0])
            return { line: at.line, column: at.col }
          }
        }
      }
      return locate(path)
    },
  }
}

function findDuplicateKey(doc: Document): { key: string; offset: number } | undefined {
  let found: { key: string; offset: number } | undefined
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<string>()
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : JSON.stringify(pair.key)
        if (seen.has(key)) {
          found = { key, offset: isNode(pair.key) && pair.key.range ? pair.key.range[0] : 0 }
          return visit.BREAK
        }
        seen.add(key)
      }
      return undefined
    },
  })
  return found
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message
}
