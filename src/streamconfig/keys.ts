/** Stream names follow Kafka topic names: `[A-Za-z0-9_.-]`, 1 to 249 characters, not `.` or `..`. */
export const streamNamePattern = /^[A-Za-z0-9_.-]{1,249}$/

export function isValidStreamName(name: string): boolean {
  return streamNamePattern.test(name) && name !== '.' && name !== '..'
}

/** A key of `streams:`: a concrete stream name, or a `/regex/` that names many streams. */
export type StreamKey =
  | { readonly kind: 'name'; readonly key: string }
  | { readonly kind: 'regex'; readonly key: string; readonly pattern: string; readonly regex: RegExp }

export type StreamKeyProblem = { readonly problem: string }

/**
 * Parses a key of `streams:`. A key starting with `/` must end with `/` and hold a JavaScript
 * RegExp (no flags); anything else must be a valid stream name.
 */
export function parseStreamKey(key: string): StreamKey | StreamKeyProblem {
  if (!key.startsWith('/')) {
    return isValidStreamName(key)
      ? { kind: 'name', key }
      : { problem: 'is not a stream name ([A-Za-z0-9_.-], 1 to 249 characters) or a /regex/' }
  }
  if (key.length < 3 || !key.endsWith('/')) return { problem: 'starts with / but is not a /regex/ (no flags allowed)' }
  const pattern = key.slice(1, -1)
  try {
    return { kind: 'regex', key, pattern, regex: new RegExp(pattern) }
  } catch (error) {
    return { problem: `is not a valid regex: ${(error as Error).message}` }
  }
}

/** Escapes a literal for use inside a RegExp (PHP's preg_quote for our purposes). */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}
