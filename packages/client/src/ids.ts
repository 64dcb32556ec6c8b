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

/** Whether `value` is an id as randomId makes them. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{20}$/.test(value)
}
