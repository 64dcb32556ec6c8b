import { LineCounter, parseDocument, isNode, type Document } from 'yaml'
import { EventplaneError, type ErrorCode } from './errors.ts'

export interface SourcePosition {
  line: number
  column: number
}

export interface ParsedYaml {
  readonly value: unknown
  /** Line and column (1-based) of the node at a JSON path, when the document has one. */
  locate(path: ReadonlyArray<string | number>): SourcePosition | undefined
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
  const doc: Document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true })
  const problem = doc.errors[0]
  if (problem !== undefined) {
    const at = lineCounter.linePos(problem.pos[0])
    throw new EventplaneError(options.code, `${options.source}:${at.line}:${at.col}: ${firstLine(problem.message)}`, {
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
  return {
    value,
    locate(path) {
      // Walk up to the nearest node that exists, so a missing key points at its parent.
      for (let depth = path.length; depth >= 0; depth--) {
        const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true)
        if (isNode(node) && node.range) {
          const at = lineCounter.linePos(node.range[0])
          return { line: at.line, column: at.col }
        }
      }
      return undefined
    },
  }
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message
}
