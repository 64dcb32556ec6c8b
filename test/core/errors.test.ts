import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { errorCodes, EventplaneError, toProblem } from '../../src/core/errors.ts'
import { repoRoot } from '../helpers.ts'

test('every error code is documented in docs/errors.md with its status', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'errors.md'), 'utf8')
  for (const [code, spec] of Object.entries(errorCodes)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`))
    assert.ok(row, `${code} is missing from docs/errors.md`)
    assert.ok(row.includes(`| ${spec.status} |`), `${code}: docs/errors.md gives another status than ${spec.status}`)
    assert.ok(row.includes(spec.canRetry ? '| yes |' : '| no |'), `${code}: docs/errors.md gives another retry flag`)
  }
  const documented = [...doc.matchAll(/^\| `(EVP_[A-Z0-9_]+)` \|/gm)].map((m) => m[1])
  for (const code of documented) assert.ok(code! in errorCodes, `docs/errors.md documents ${code}, which does not exist`)
})

test('codes are prefixed, and problems carry status, code and retry flag', () => {
  for (const code of Object.keys(errorCodes)) assert.match(code, /^EVP_[A-Z0-9_]+$/)
  const problem = toProblem(new EventplaneError('EVP_SCHEMA_REMOTE_TIMEOUT', 'slow', { details: { url: 'x' } }))
  assert.deepEqual(problem, {
    type: 'urn:eventplane:error:EVP_SCHEMA_REMOTE_TIMEOUT',
    title: 'Remote schema service timed out',
    status: 504,
    code: 'EVP_SCHEMA_REMOTE_TIMEOUT',
    detail: 'slow',
    canRetry: true,
    details: { url: 'x' },
  })
})
