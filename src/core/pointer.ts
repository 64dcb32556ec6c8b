/** JSON Pointer (RFC 6901) helpers. */

export function escapeSegment(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1')
}

/** Appends segments to a pointer: `childPointer('/properties', 'a/b')` is `/properties/a~1b`. */
export function childPointer(base: string, ...segments: ReadonlyArray<string | number>): string {
  return base + segments.map((segment) => `/${escapeSegment(segment)}`).join('')
}

/** `/properties/a~1b` → `['properties', 'a/b']`. */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return []
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
}

/** Like pointerSegments, with array indexes as numbers: the path form YAML documents are walked with. */
export function pointerPath(pointer: string): Array<string | number> {
  return pointerSegments(pointer).map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment))
}
