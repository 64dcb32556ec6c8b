/**
 * @module canary: synthetic events that tell an empty stream from a broken one, as Wikimedia's
 * canary job does (reference wmf-server.md §5.4): for every stream with
 * `canary_events_enabled`, the first example of its latest schema, with
 * `meta.domain = "canary"`, its own `meta.stream` and no `meta.dt` (the intake sets it),
 * posted to the stream's intake. Only 201 and 202 count as sent. Consumers leave canaries out
 * (`/v2/stream` does by default).
 */
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import type { SchemaSource } from '../schemas/source.ts'
import type { StreamConfig } from '../streamconfig/index.ts'

/** One stream's canary, or why it has none. */
export interface CanaryPlan {
  stream: string
  /** Its `destination_event_service`, which `destinations` may map to an intake URL. */
  destination: string | undefined
  event?: JsonObject
  /** Why there is no canary: not enabled, no schema title, schema not found, no example. */
  problem?: string
}

export interface CanaryResult {
  stream: string
  /** sent: 201 or 202; failed: any other answer or none; skipped: no canary (see detail). */
  outcome: 'sent' | 'failed' | 'skipped'
  status?: number | undefined
  detail: string
}

/**
 * The canaries of the named streams with `canary_events_enabled` (regex keys name no stream),
 * or of `only` (each must be a named stream with canary events enabled; a problem otherwise).
 */
export async function planCanaries(config: StreamConfig, schemas: SchemaSource, only?: readonly string[]): Promise<CanaryPlan[]> {
  const plans: CanaryPlan[] = []
  const named = config.entries.filter((entry) => entry.key.kind !== 'regex')
  const selected = only === undefined || only.length === 0 ? named.filter((entry) => entry.settings.canary_events_enabled === true) : only.map((name) => named.find((entry) => entry.key.key === name) ?? name)
  for (const entry of selected) {
    if (typeof entry === 'string') {
      plans.push({ stream: entry, destination: undefined, problem: config.resolve(entry) === undefined ? 'no such stream in the stream config' : 'a /regex/ key configures it; canaries go to streams configured by name' })
      continue
    }
    const stream = entry.key.key
    const settings = entry.settings
    const destination = typeof settings.destination_event_service === 'string' ? settings.destination_event_service : undefined
    const plan = (problem: string): CanaryPlan => ({ stream, destination, problem })
    if (settings.canary_events_enabled !== true) {
      plans.push(plan('canary_events_enabled is not true for this stream'))
      continue
    }
    const title = settings.schema_title
    if (typeof title !== 'string' || title === '') {
      plans.push(plan('the stream has no schema_title'))
      continue
    }
    let schema: JsonObject
    try {
      schema = (await schemas.get(`/${title}/latest`)).schema as JsonObject
    } catch (error) {
      plans.push(plan(`its schema ${title} (latest) could not be read: ${(error as Error).message}`))
      continue
    }
    const examples = schema['examples']
    const example = Array.isArray(examples) ? examples[0] : undefined
    if (!isPlainObject(example)) {
      plans.push(plan(`the latest schema of ${title} (${String(schema['$id'] ?? '?')}) has no example to send`))
      continue
    }
    const event = structuredClone(example)
    if (typeof event['$schema'] !== 'string' && typeof schema['$id'] === 'string') event['$schema'] = schema['$id']
    const meta = isPlainObject(event['meta']) ? event['meta'] : {}
    delete meta['dt']
    delete meta['id']
    meta['domain'] = 'canary'
    meta['stream'] = stream
    event['meta'] = meta
    plans.push({ stream, destination, event })
  }
  return plans
}

export interface SendOptions {
  /** `destination_event_service` → intake URL (origin or …/v1/events). */
  destinations?: Readonly<Record<string, string>>
  /** The intake of streams whose destination is not in `destinations`. */
  defaultUrl: string
  fetch?: typeof globalThis.fetch
  timeoutMs?: number
}

/** Posts each canary alone, so that each stream gets its own verdict. */
export async function sendCanaries(plans: readonly CanaryPlan[], options: SendOptions): Promise<CanaryResult[]> {
  const fetch = options.fetch ?? globalThis.fetch
  const results: CanaryResult[] = []
  for (const plan of plans) {
    if (plan.event === undefined) {
      results.push({ stream: plan.stream, outcome: 'skipped', detail: plan.problem ?? 'no canary' })
      continue
    }
    const base = (plan.destination !== undefined ? options.destinations?.[plan.destination] : undefined) ?? options.defaultUrl
    const url = /\/v1\/events(\?|$)/.test(base) ? base : `${base.replace(/\/+$/, '')}/v1/events`
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'eventplane-canary' },
        body: JSON.stringify([plan.event]),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      })
      const text = await response.text()
      const ok = response.status === 201 || response.status === 202
      results.push({ stream: plan.stream, outcome: ok ? 'sent' : 'failed', status: response.status, detail: ok ? `${url}: ${response.status}` : `${url}: ${response.status} ${reasonOf(text, response.statusText)}` })
    } catch (error) {
      results.push({ stream: plan.stream, outcome: 'failed', detail: `${url}: no answer: ${(error as Error).message}` })
    }
  }
  return results
}

/** The first refusal of an intake answer, in a line: its code and message. */
function reasonOf(text: string, statusText: string): string {
  try {
    const body = JSON.parse(text) as { invalid?: Array<{ context?: { code?: string; message?: string } }>; error?: Array<{ context?: { code?: string; message?: string } }>; code?: string; detail?: string }
    const item = body.invalid?.[0] ?? body.error?.[0]
    if (item?.context !== undefined) return `${item.context.code ?? ''}: ${item.context.message ?? ''}`
    if (typeof body.code === 'string') return `${body.code}: ${body.detail ?? ''}`
  } catch {
    // Not JSON: the status line says it.
  }
  return statusText
}
