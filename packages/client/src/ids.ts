/**
 * Random ids of 20 lowercase hex digits (80 bits), the shape of MediaWiki's session and
 * pageview tokens (`mw.user.generateRandomSessionId`) and of the product metrics schemas'
 * `performer.session_id` / `pageview_id`. Always from `crypto.getRandomValues` (browsers and
 * Node.js 20 have it); never from Math.random.
 */
export function randomId(): string {
  const bytes = new Uint8Array(10)
  globalThis.crypto.getRandomValues(bytes)
  let id = ''
  for (const byte of bytes) id += byte.toString(16).padStart(2, '0')
  return id
}

/**
 * A random (version 4) UUID, as the intake would give `meta.id`. crypto.randomUUID exists only
 * in secure contexts (https, localhost); getRandomValues exists everywhere.
 */
export function uuid(): string {
  const random = (globalThis.crypto as { randomUUID?: () => string }).randomUUID
  if (typeof random === 'function') return random.call(globalThis.crypto)
  const b = new Uint8Array(16)
  globalThis.crypto.getRandomValues(b)
  b[6] = (b[6]! & 0x0f) | 0x40
  b[8] = (b[8]! & 0x3f) | 0x80
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Whether `value` is an id as randomId makes them. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{20}$/.test(value)
}
