import { isPlainObject, jsonEqual } from '../core/objects.ts'
import { childPointer, comparePointers } from './rules-pointer.ts'

export type DiffKind = 'added' | 'removed' | 'changed'

export interface DiffEntry {
  kind: DiffKind
  /** JSON Pointer: into `a` for removed entries, into `b` for added ones. */
  path: string
  /** Absent for `added`. */
  oldValue?: unknown
  /** Absent for `removed`. */
  newValue?: unknown
}

/**
 * Structural diff of two schemas (or any JSON values), sorted by path. Objects are compared
 * key by key regardless of key order. Lists of plain values (`required`, `enum`, `type`) are
 * compared as sets, so a moved name is not reported as a change, with one `changed` entry for
 * the whole list when only the order differs. Other lists are compared position by position.
 *
 * @example
 * diffSchemas({ type: 'string' }, { type: 'string', maxLength: 10 })
 * // [{ kind: 'added', path: '/maxLength', newValue: 10 }]
 */
export function diffSchemas(a: unknown, b: unknown): DiffEntry[] {
  const entries: DiffEntry[] = []
  diffValue(a, b, '', entries)
  return entries.sort((x, y) => comparePointers(x.path, y.path) || kindOrder[x.kind] - kindOrder[y.kind])
}

const kindOrder: Record<DiffKind, number> = { removed: 0, changed: 1, added: 2 }

function diffValue(a: unknown, b: unknown, path: string, out: DiffEntry[]): void {
  if (jsonEqual(a, b)) return
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const key of Object.keys(a)) {
      const at = childPointer(path, key)
      if (Object.hasOwn(b, key)) diffValue(a[key], b[key], at, out)
      else out.push({ kind: 'removed', path: at, oldValue: a[key] })
    }
    for (const key of Object.keys(b)) {
      if (!Object.hasOwn(a, key)) out.push({ kind: 'added', path: childPointer(path, key), newValue: b[key] })
    }
    return
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.every(isScalar) && b.every(isScalar)) return diffScalarList(a, b, path, out)
    a.forEach((item, i) => {
      if (i < b.length) diffValue(item, b[i], childPointer(path, i), out)
      else out.push({ kind: 'removed', path: childPointer(path, i), oldValue: item })
    })
    for (let i = a.length; i < b.length; i++) out.push({ kind: 'added', path: childPointer(path, i), newValue: b[i] })
    return
  }
  out.push({ kind: 'changed', path, oldValue: a, newValue: b })
}

function diffScalarList(a: readonly unknown[], b: readonly unknown[], path: string, out: DiffEntry[]): void {
  const removed = a.flatMap((item, i) => (b.includes(item) ? [] : [{ kind: 'removed' as const, path: childPointer(path, i), oldValue: item }]))
  const added = b.flatMap((item, i) => (a.includes(item) ? [] : [{ kind: 'added' as const, path: childPointer(path, i), newValue: item }]))
  if (removed.length === 0 && added.length === 0) {
    // Same members: either the order or the number of duplicates changed.
    out.push({ kind: 'changed', path, oldValue: a, newValue: b })
    return
  }
  out.push(...removed, ...added)
}

function isScalar(value: unknown): boolean {
  return value === null || typeof value !== 'object'
}

export interface FormatDiffOptions {
  /** Longest rendering of one value before it is cut with `…`. Default 120. */
  maxValueLength?: number
}

const marks: Record<DiffKind, string> = { added: '+', removed: '-', changed: '~' }

/**
 * One line per entry, `+` added, `-` removed, `~` changed, values as compact JSON, then a
 * count. The same input always gives the same text.
 *
 * @example
 * formatDiff(diffSchemas(a, b))
 * // + /properties/dt: {"type":"string","format":"date-time"}
 * // - /properties/http/properties/client_ip: {"type":"string"}
 * // ~ /properties/meta/properties/uri/maxLength: 1024 → 8192
 * // 3 differences: 1 added, 1 removed, 1 changed
 */
export function formatDiff(entries: readonly DiffEntry[], options: FormatDiffOptions = {}): string {
  if (entries.length === 0) return 'no differences\n'
  const max = options.maxValueLength ?? 120
  const show = (value: unknown): string => {
    const text = JSON.stringify(value) ?? 'undefined'
    return text.length > max ? `${text.slice(0, max - 1)}…` : text
  }
  const lines = entries.map((entry) => {
    const value =
      entry.kind === 'added'
        ? show(entry.newValue)
        : entry.kind === 'removed'
          ? show(entry.oldValue)
          : `${show(entry.oldValue)} → ${show(entry.newValue)}`
    return `${marks[entry.kind]} ${entry.path === '' ? '/' : entry.path}: ${value}`
  })
  const count = (kind: DiffKind): number => entries.filter((entry) => entry.kind === kind).length
  const total = `${entries.length} difference${entries.length === 1 ? '' : 's'}: ${count('added')} added, ${count('removed')} removed, ${count('changed')} changed`
  return `${lines.join('\n')}\n${total}\n`
}
