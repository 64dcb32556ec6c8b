/**
 * The fast date-time check of the validators says yes only where ajv-formats' full check says
 * yes (anything else is left to the full check), and it does say yes to what toISOString writes.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fullFormats } from 'ajv-formats/dist/formats.js'
import { canonicalUtcDateTime } from '../../src/schemas/rules-ajv.ts'

const full = (fullFormats['date-time'] as { validate: (value: string) => boolean }).validate

test('never yes where the full date-time check says no; yes to every toISOString', () => {
  let seed = 42
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  const pick = (chars: string) => chars[Math.floor(random() * chars.length)]!
  const cases: string[] = [
    '2026-11-30T16:02:34.261Z', '2026-11-30T16:02:34Z', '2024-02-29T00:00:00Z', '2023-02-29T00:00:00Z', '1900-02-29T00:00:00Z', '2000-02-29T00:00:00Z',
    '2026-04-31T00:00:00Z', '2026-13-01T00:00:00Z', '2026-00-01T00:00:00Z', '2026-01-00T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T23:60:00Z',
    '2026-01-01T23:59:60Z', '2026-01-01T23:59:59.Z', '2026-01-01T23:59:59.1234567890Z', '2026-01-01t23:59:59z', '2026-01-01 23:59:59Z',
    '2026-01-01T23:59:59+01:00', '2026-01-01T23:59:59', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '２026-01-01T00:00:00Z', '2026-1-01T00:00:00Z',
  ]
  for (let i = 0; i < 20_000; i++) {
    const ms = Math.floor(random() * 8e12) - 1e12
    const iso = new Date(ms).toISOString()
    if (/^\d{4}-/.test(iso)) {
      assert.equal(canonicalUtcDateTime(iso), true, iso)
      cases.push(iso, iso.replace(/\.\d+Z$/, 'Z'))
    }
    // Mutations: a character replaced by one a date-time is made of.
    const chars = [...iso]
    chars[Math.floor(random() * chars.length)] = pick('0123456789:-TZ.tz+ ')
    cases.push(chars.join(''))
    cases.push(`${2000 + Math.floor(random() * 30)}-${String(Math.floor(random() * 14)).padStart(2, '0')}-${String(Math.floor(random() * 33)).padStart(2, '0')}T${String(Math.floor(random() * 26)).padStart(2, '0')}:${String(Math.floor(random() * 62)).padStart(2, '0')}:${String(Math.floor(random() * 62)).padStart(2, '0')}Z`)
  }
  let fast = 0
  for (const value of cases) {
    if (canonicalUtcDateTime(value) === true) {
      fast++
      assert.equal(full(value), true, `${value}: the fast check says yes, the full check no`)
    }
  }
  assert.ok(fast > 30_000, `${fast} decided by the fast check`)
})
