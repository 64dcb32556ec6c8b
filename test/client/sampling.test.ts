/** Sampling, table-driven: Wikimedia's rule (first 8 hex digits / 0xffffffff < rate), every unit, and every kind of bad config. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { idInSample, parseSample, randomId, sampleVerdict, type SampleUnit } from '../../packages/client/src/index.ts'

const low = '00000000aaaaaaaaaaaa'
const high = 'ffffffffaaaaaaaaaaaa'
const ids = (id: string | undefined) => (_unit: SampleUnit) => id

const cases: Array<{ name: string; sample: unknown; id?: string; in: boolean; reason?: RegExp }> = [
  { name: 'no sample setting: everyone', sample: undefined, id: high, in: true },
  { name: 'null sample: everyone', sample: null, id: high, in: true },
  { name: 'rate 0: nobody, even the lowest id', sample: { unit: 'session', rate: 0 }, id: low, in: false, reason: /rate 0/ },
  { name: 'rate 1: everyone, even ffffffff (out in Wikimedia JS)', sample: { unit: 'session', rate: 1 }, id: high, in: true },
  { name: 'rate 1 needs no id at all', sample: { unit: 'device', rate: 1 }, id: undefined, in: true },
  { name: 'missing unit', sample: { rate: 0.5 }, id: low, in: false, reason: /invalid sample config: sample.unit/ },
  { name: 'unknown unit', sample: { unit: 'user', rate: 0.5 }, id: low, in: false, reason: /sample.unit must be one of pageview, session, device, not "user"/ },
  { name: 'missing rate', sample: { unit: 'session' }, id: low, in: false, reason: /sample.rate must be a number from 0 to 1, not nothing/ },
  { name: 'rate above 1', sample: { unit: 'session', rate: 1.5 }, id: low, in: false, reason: /not 1.5/ },
  { name: 'negative rate', sample: { unit: 'session', rate: -0.1 }, id: low, in: false, reason: /sample.rate/ },
  { name: 'rate as a string', sample: { unit: 'session', rate: '0.5' }, id: low, in: false, reason: /not "0.5"/ },
  { name: 'rate NaN (JSON null)', sample: { unit: 'session', rate: null }, id: low, in: false, reason: /sample.rate/ },
  { name: 'sample as a list', sample: [{ unit: 'session', rate: 1 }], id: low, in: false, reason: /must be an object/ },
  { name: 'sample as a number', sample: 0.5, id: low, in: false, reason: /must be an object/ },
  { name: 'no id for the unit', sample: { unit: 'pageview', rate: 0.5 }, id: undefined, in: false, reason: /no pageview id/ },
  { name: 'an id that is not hex', sample: { unit: 'session', rate: 0.5 }, id: 'zzzzzzzzzzzzzzzzzzzz', in: false, reason: /out of sample/ },
  ...(['pageview', 'session', 'device'] as const).flatMap((unit) => [
    { name: `${unit}: low id in at 0.5`, sample: { unit, rate: 0.5 }, id: low, in: true },
    { name: `${unit}: high id out at 0.5`, sample: { unit, rate: 0.5 }, id: high, in: false, reason: new RegExp(`out of sample \\(${unit}, rate 0.5\\)`) },
    { name: `${unit}: 7fffffff just in at 0.5`, sample: { unit, rate: 0.5 }, id: '7fffffff000000000000', in: true },
    { name: `${unit}: 80000000 just out at 0.5`, sample: { unit, rate: 0.5 }, id: '80000000000000000000', in: false },
  ]),
]

for (const c of cases) {
  test(`sampling: ${c.name}`, () => {
    const verdict = sampleVerdict(c.sample, ids(c.id))
    assert.equal(verdict.in, c.in, JSON.stringify(verdict))
    if (!verdict.in && c.reason !== undefined) assert.match(verdict.reason, c.reason)
  })
}

test('sampling: the unit decides which id is read', () => {
  const seen: SampleUnit[] = []
  for (const unit of ['pageview', 'session', 'device'] as const) {
    sampleVerdict({ unit, rate: 0.5 }, (u) => (seen.push(u), low))
  }
  assert.deepEqual(seen, ['pageview', 'session', 'device'])
})

test('sampling: the share in sample matches the rate, and is nested (in at r means in at any higher r)', () => {
  const sample = Array.from({ length: 20_000 }, () => randomId())
  for (const rate of [0.01, 0.1, 0.5, 0.9]) {
    const share = sample.filter((id) => idInSample(id, rate)).length / sample.length
    assert.ok(Math.abs(share - rate) < 0.02, `rate ${rate}: ${share} in sample`)
  }
  for (const id of sample.slice(0, 2000)) {
    let was = false
    for (const rate of [0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.99]) {
      const now = idInSample(id, rate)
      assert.ok(!(was && !now), `${id} in at a lower rate, out at ${rate}`)
      was = now
    }
  }
})

test('sampling: parseSample keeps valid settings as they are', () => {
  assert.deepEqual(parseSample({ unit: 'device', rate: 0.25, extra: true }), { unit: 'device', rate: 0.25 })
  assert.equal(parseSample(undefined), undefined)
})
