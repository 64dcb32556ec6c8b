/**
 * Contextual attributes: what a stream asks for in `producers.metrics_platform_client.
 * provide_values` (e.g. `performer_session_id`, `page_title`), taken from a context provider
 * and set into the event as nested fields, split at the first `_` (`performer_session_id` is
 * `performer.session_id`). Values that are null or undefined are left out, never sent as null.
 * `agent_client_platform` and `agent_client_platform_family` are always added, as Wikimedia's
 * clients do (the base schemas require `agent`).
 */

/** Gives the value of a contextual attribute by its name (undefined: not known here). */
export type ContextProvider = (name: string) => unknown

export const alwaysProvided = ['agent_client_platform', 'agent_client_platform_family'] as const

/** The attribute names a stream asks for, checked: a list of strings of the form `<group>_<name>`. */
export function requestedAttributes(provideValues: unknown): { names: string[]; ignored: unknown[] } {
  const names: string[] = [...alwaysProvided]
  const ignored: unknown[] = []
  if (provideValues === undefined || provideValues === null) return { names, ignored }
  const list = Array.isArray(provideValues) ? provideValues : [provideValues]
  for (const name of list) {
    if (typeof name === 'string' && /^[a-z]+_[a-z0-9_]+$/.test(name)) {
      if (!names.includes(name)) names.push(name)
    } else ignored.push(name)
  }
  return { names, ignored }
}

/** Sets the requested attributes into `event` (in place); returns the names that had no value. */
export function addContext(event: Record<string, unknown>, names: readonly string[], provider: ContextProvider): string[] {
  const missing: string[] = []
  for (const name of names) {
    let value: unknown
    try {
      value = provider(name)
    } catch {
      value = undefined
    }
    if (value === undefined || value === null) {
      missing.push(name)
      continue
    }
    const cut = name.indexOf('_')
    const group = name.slice(0, cut)
    const key = name.slice(cut + 1)
    const existing = event[group]
    const target = typeof existing === 'object' && existing !== null && !Array.isArray(existing) ? (existing as Record<string, unknown>) : (event[group] = {} as Record<string, unknown>)
    target[key] = value
  }
  return missing
}
