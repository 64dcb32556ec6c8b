import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { lstat, open, readFile, realpath, stat } from 'node:fs/promises'
import { basename, dirname, join, sep } from 'node:path'
import { EventplaneError } from '../core/errors.ts'
import jsyaml from 'js-yaml'

/**
 * Safe access to files inside a schema folder. Every path from outside (URL, `$ref`,
 * `$schema`) goes through `resolveInFolder`, which refuses `..`, odd characters, and any
 * symlink or pointer file whose target leaves the folder.
 */

const segmentPattern = /^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$/

/** Splits and checks a relative path; throws EVP_PATH_INVALID for anything that could escape. */
export function safeSegments(relative: string): string[] {
  if (relative.length > 1024) throw new EventplaneError('EVP_PATH_INVALID', 'path is longer than 1024 characters')
  const trimmed = relative.replace(/^\/+/, '').replace(/\/+$/, '')
  if (trimmed === '') return []
  const segments = trimmed.split('/')
  for (const segment of segments) {
    if (segment === '..' || segment === '.' || !segmentPattern.test(segment)) {
      throw new EventplaneError('EVP_PATH_INVALID', `path segment ${JSON.stringify(segment)} is not allowed`, {
        details: { path: relative },
      })
    }
  }
  return segments
}

/** Names that jsonschema-tools makes symlinks; where a filesystem has none they hold the target's name. */
export function isLinkName(name: string): boolean {
  return name === 'latest' || name === 'latest.yaml' || name === 'latest.json' || semverName.test(name)
}

export const semverName = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/
const pointerContent = /^\s*([A-Za-z0-9_][A-Za-z0-9_.+-]*)\s*$/
const maxPointerBytes = 256

export interface ResolvedEntry {
  /** The path asked for, inside the folder. */
  path: string
  /** The file or folder it leads to, after symlinks and pointer files. */
  real: string
  isDirectory: boolean
  size: number
}

/**
 * Resolves `relative` inside `folder` (an already real path). Returns undefined when nothing
 * is there. Symlinks are followed only while they stay inside the folder; small pointer files
 * (`latest` holding `2.0.0.yaml`) are followed to a sibling.
 */
export async function resolveInFolder(folder: string, relative: string): Promise<ResolvedEntry | undefined> {
  const segments = safeSegments(relative)
  let path = join(folder, ...segments)
  for (let hops = 0; hops < 4; hops++) {
    try {
      await lstat(path)
    } catch {
      return undefined
    }
    let real: string
    try {
      real = await realpath(path)
    } catch {
      return undefined // a dangling symlink
    }
    if (real !== folder && !real.startsWith(folder + sep)) {
      throw new EventplaneError('EVP_PATH_INVALID', `${JSON.stringify(relative)} leads outside the schema folder`, {
        details: { path: relative },
      })
    }
    const info = await stat(real)
    if (info.isDirectory()) return { path, real, isDirectory: true, size: 0 }
    const target = isLinkName(basename(path)) && info.size <= maxPointerBytes ? await readPointer(real) : undefined
    if (target === undefined || target === basename(path)) return { path, real, isDirectory: false, size: info.size }
    path = join(dirname(path), target)
  }
  throw new EventplaneError('EVP_PATH_INVALID', `${JSON.stringify(relative)}: too many pointer hops`, {
    details: { path: relative },
  })
}

async function readPointer(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8')
  const match = pointerContent.exec(text)
  return match?.[1]
}

/** Reads a file, refusing it when it is larger than `maxBytes` (checked before and while reading). */
export async function readLimited(file: string, maxBytes: number): Promise<Buffer> {
  const handle = await open(file, 'r')
  try {
    const { size } = await handle.stat()
    if (size > maxBytes) throw tooLarge(file, size, maxBytes)
    const buffer = Buffer.alloc(size)
    let offset = 0
    while (offset < size) {
      const { bytesRead } = await handle.read(buffer, offset, size - offset, offset)
      if (bytesRead === 0) break
      offset += bytesRead
    }
    return buffer.subarray(0, offset)
  } finally {
    await handle.close()
  }
}

/** readLimited, synchronously: for a command reading many small files at once, where one thread pool round trip per call costs more than the read. */
export function readLimitedSync(file: string, maxBytes: number): Buffer {
  const fd = openSync(file, 'r')
  try {
    const { size } = fstatSync(fd)
    if (size > maxBytes) throw tooLarge(file, size, maxBytes)
    const buffer = Buffer.alloc(size)
    let offset = 0
    while (offset < size) {
      const bytesRead = readSync(fd, buffer, offset, size - offset, offset)
      if (bytesRead === 0) break
      offset += bytesRead
    }
    return buffer.subarray(0, offset)
  } finally {
    closeSync(fd)
  }
}

export function tooLarge(source: string, size: number, maxBytes: number): EventplaneError {
  return new EventplaneError('EVP_SCHEMA_FILE_TOO_LARGE', `${source} is ${size} bytes, over the ${maxBytes}-byte limit`, {
    details: { source, size, limit: maxBytes },
  })
}

/** Most nodes a schema document may expand to once YAML aliases are followed. */
const maxSchemaNodes = 1_000_000

/**
 * Parses schema text (YAML or JSON); the result must be a JSON object. Schema files are read
 * with js-yaml 3, the parser jsonschema-tools uses, so both tools see the same values; its core
 * schema keeps timestamps as strings. It is 10x faster than the yaml package on these files
 * (docs/decisions.md), which matters when a repository is materialized or served. Duplicate
 * keys are errors, and a document whose aliases expand past a million nodes is refused.
 */
export function parseSchemaText(text: string, source: string): Record<string, unknown> {
  let value: unknown
  try {
    value = jsyaml.safeLoad(text, { schema: jsyaml.CORE_SCHEMA, filename: source })
  } catch (error) {
    const mark = (error as { mark?: { line: number; column: number } }).mark
    const reason = (error as { reason?: string }).reason ?? (error as Error).message
    const where = mark ? `:${mark.line + 1}:${mark.column + 1}` : ''
    throw new EventplaneError('EVP_SCHEMA_PARSE', `${source}${where}: ${reason}`, {
      cause: error,
      details: { source, ...(mark ? { line: mark.line + 1, column: mark.column + 1 } : {}) },
    })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EventplaneError('EVP_SCHEMA_PARSE', `${source}: a schema must be a YAML or JSON object`, {
      details: { source },
    })
  }
  if (expandedSize(value, maxSchemaNodes) > maxSchemaNodes) {
    throw new EventplaneError('EVP_SCHEMA_PARSE', `${source}: YAML aliases expand to more than ${maxSchemaNodes} nodes`, {
      details: { source, limit: maxSchemaNodes },
    })
  }
  return value as Record<string, unknown>
}

/** Counts nodes as a walk that follows every alias would meet them, stopping past `limit`. */
function expandedSize(value: unknown, limit: number): number {
  let count = 0
  const stack: unknown[] = [value]
  while (stack.length > 0 && count <= limit) {
    const node = stack.pop()
    count++
    if (typeof node === 'object' && node !== null) for (const child of Array.isArray(node) ? node : Object.values(node)) stack.push(child)
  }
  return count
}
