/**
 * Stream sampling, Wikimedia's rule: an event is in sample when the first 8 hex digits of the
 * id of its sampling unit, read as a number and divided by 0xffffffff, are below the rate. The
 * same id is in or out for every event of a stream, and in at any higher rate once in at a
 * lower one. Where Wikimedia's JS client differs from its own rule, this follows the rule:
 * `device` is a unit (the JS client treats it as always out), rate 0 is a valid "nobody" (not an
 * invalid config), and rate 1 takes everyone (an id starting `ffffffff` included).
 */

export type SampleUnit = 'pageview' | 'session' | 'device'

export const sampleUnits: readonly SampleUnit[] = ['pageview', 'session', 'device']

/** A stream's `sample` setting, once checked. */
export interface Sample {
  unit: SampleUnit
  rate: number
}

export type SampleVerdict = { in: true; sample: Sample | undefined } | { in: false; reason: string }

/**
 * Checks a stream's `sample` setting: undefined when the stream has none (every event is in),
 * the setting when it is valid, else the reason it is not (every event is then out: a sampling
 * mistake must not send a whole population).
 */
export function parseSample(value: unknown): Sample | undefined | { invalid: string } {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) return { invalid: `sample must be an object with unit and rate, not ${describe(value)}` }
  const { unit, rate } = value as { unit?: unknown; rate?: unknown }
  if (!sampleUnits.includes(unit as SampleUnit)) return { invalid: `sample.unit must be one of ${sampleUnits.join(', ')}, not ${describe(unit)}` }
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate > 1) return { invalid: `sample.rate must be a number from 0 to 1, not ${describe(rate)}` }
  return { unit: unit as SampleUnit, rate }
}

/** Whether an id is in sample at `rate` (ids of fewer than 8 hex digits are never in, unless rate is 1). */
export function idInSample(id: string, rate: number): boolean {
  if (rate >= 1) return true
  if (rate <= 0 || !/^[0-9a-fA-F]{8}/.test(id)) return false
  return Number.parseInt(id.slice(0, 8), 16) / 0xffffffff < rate
}

/** The sampling decision for one event of a stream whose `sample` setting is `value`. */
export function sampleVerdict(value: unknown, idOf: (unit: SampleUnit) => string | undefined): SampleVerdict {
  const sample = parseSample(value)
  if (sample === undefined) return { in: true, sample: undefined }
  if ('invalid' in sample) return { in: false, reason: `invalid sample config: ${sample.invalid}` }
  if (sample.rate === 0) return { in: false, reason: 'out of sample (rate 0)' }
  if (sample.rate === 1) return { in: true, sample }
  const id = idOf(sample.unit)
  if (id === undefined || id === '') return { in: false, reason: `out of sample: no ${sample.unit} id` }
  return idInSample(id, sample.rate) ? { in: true, sample } : { in: false, reason: `out of sample (${sample.unit}, rate ${sample.rate})` }
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing'
  try {
    const text = JSON.stringify(value)
    return text.length > 60 ? `${text.slice(0, 57)}...` : text
  } catch {
    return typeof value
  }
}
