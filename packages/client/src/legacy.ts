/**
 * Legacy EventLogging: `logEvent(schemaName, data)` wraps the data in the EventCapsule and
 * sends it to the stream `eventlogging_<SchemaName>`, as MediaWiki does for schemas migrated to
 * Event Platform (reference §1.6): `{ event, schema, webHost, wiki, $schema, client_dt }`, with
 * `$schema` the migrated schema (`/analytics/legacy/<lowercase name>/<version>`).
 */
import type { MetricsClient } from './client.ts'

export interface LegacyOptions {
  /** Schema name → its migrated `$schema` URI (MediaWiki's `EventLogging.Schemas`), or a version: `'1.2.0'`. */
  schemas: Record<string, string>
  /** `wiki` of the capsule (MediaWiki's wgDBname). */
  wiki?: string
  /** `webHost` of the capsule (default: location.hostname). */
  webHost?: string
  now?: () => number
}

/** The capsule of one legacy event, or why there is none. */
export function capsule(schemaName: string, data: unknown, options: LegacyOptions): { stream: string; event: Record<string, unknown> } | { invalid: string } {
  if (typeof schemaName !== 'string' || !/^[A-Za-z0-9_.-]{1,63}$/.test(schemaName)) return { invalid: `a legacy schema name is 1 to 63 letters, digits, . _ or -, not ${JSON.stringify(schemaName)}` }
  const known = options.schemas[schemaName]
  if (known === undefined) return { invalid: `schema ${schemaName} is not one of the migrated schemas configured (${Object.keys(options.schemas).join(', ') || 'none'})` }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { invalid: 'the event data must be an object' }
  const uri = /^\d+\.\d+\.\d+$/.test(known) ? `/analytics/legacy/${schemaName.toLowerCase()}/${known}` : known
  const webHost = options.webHost ?? (globalThis as { location?: { hostname?: string } }).location?.hostname
  const event: Record<string, unknown> = {
    $schema: uri,
    event: { ...(data as Record<string, unknown>) },
    schema: schemaName,
    client_dt: new Date((options.now ?? Date.now)()).toISOString(),
  }
  if (typeof webHost === 'string' && webHost !== '') event['webHost'] = webHost
  if (options.wiki !== undefined) event['wiki'] = options.wiki
  return { stream: `eventlogging_${schemaName}`, event }
}

/** `mw.eventLog.logEvent`: resolves with the capsule's event once handed to the client, rejects with the reason when it cannot be. */
export function logEvent(client: MetricsClient, schemaName: string, data: unknown, options: LegacyOptions): Promise<Record<string, unknown>> {
  const made = capsule(schemaName, data, options)
  if ('invalid' in made) return Promise.reject(new Error(made.invalid))
  client.submit(made.stream, made.event)
  return Promise.resolve(made.event['event'] as Record<string, unknown>)
}
