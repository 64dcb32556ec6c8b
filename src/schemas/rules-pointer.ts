/** JSON Pointer helpers shared by the compatibility, lint and diff modules. */
import { pointerSegments } from '../core/pointer.ts'

export { childPointer, escapeSegment, pointerSegments } from '../core/pointer.ts'

/** Orders pointers segment by segment, numbers numerically, so `/enum/2` sorts before `/enum/10`. */
export function comparePointers(a: string, b: string): number {
  const sa = pointerSegments(a)
  const sb = pointerSegments(b)
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const x = sa[i]!
    const y = sb[i]!
    if (x === y) continue
    const nx = /^\d+$/.test(x) ? Number(x) : Number.NaN
    const ny = /^\d+$/.test(y) ? Number(y) : Number.NaN
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) return nx - ny
    return x < y ? -1 : 1
  }
  return sa.length - sb.length
}

/** Short JSON rendering of a value for messages. */
export function renderValue(value: unknown, maxLength = 80): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value) ?? String(value)
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text
}
