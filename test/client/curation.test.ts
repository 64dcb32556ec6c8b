/** Curation, table-driven: every operator (and its aliases), numbers, dates, lists, missing values and bad rules. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { curate } from '../../packages/client/src/index.ts'

const event = {
  action: 'click',
  performer: { edit_count: 42, groups: ['*', 'user', 'autoconfirmed'], registration_dt: '2020-05-01T12:00:00Z', name: 'Alice', is_bot: false, language: null },
  page: { namespace_id: 0, title: 'Dark Souls' },
  mediawiki: { skin: 'vector-2022' },
}

const cases: Array<[string, unknown, boolean, RegExp?]> = [
  ['equals a string', { mediawiki_skin: { equals: 'vector-2022' } }, true],
  ['equals fails', { mediawiki_skin: { equals: 'minerva' } }, false, /does not hold for "vector-2022"/],
  ['equals a number', { page_namespace_id: { equals: 0 } }, true],
  ['equals is strict (no "0" for 0)', { page_namespace_id: { equals: '0' } }, false],
  ['equals a boolean', { performer_is_bot: { equals: false } }, true],
  ['equals a top-level field', { action: { equals: 'click' } }, true],
  ['is_equals (the Java client\'s spelling)', { mediawiki_skin: { is_equals: 'vector-2022' } }, true],
  ['not_equals', { mediawiki_skin: { not_equals: 'minerva' } }, true],
  ['not_equals fails', { mediawiki_skin: { not_equals: 'vector-2022' } }, false],
  ['greater_than', { performer_edit_count: { greater_than: 41 } }, true],
  ['greater_than fails at equality', { performer_edit_count: { greater_than: 42 } }, false],
  ['greater_than with a numeric string operand', { performer_edit_count: { greater_than: '10' } }, true],
  ['greater_than with a non-numeric operand', { performer_edit_count: { greater_than: 'many' } }, false, /the operand must be a number/],
  ['less_than', { performer_edit_count: { less_than: 43 } }, true],
  ['less_than fails', { performer_edit_count: { less_than: 42 } }, false],
  ['greater_than_or_equals at equality', { performer_edit_count: { greater_than_or_equals: 42 } }, true],
  ['greater_than_or_equals fails', { performer_edit_count: { greater_than_or_equals: 43 } }, false],
  ['less_than_or_equals at equality', { performer_edit_count: { less_than_or_equals: 42 } }, true],
  ['less_than_or_equals fails', { performer_edit_count: { less_than_or_equals: 41 } }, false],
  ['a range: two rules, both must hold', { performer_edit_count: { greater_than: 10, less_than: 100 } }, true],
  ['a range that fails on one side', { performer_edit_count: { greater_than: 10, less_than: 20 } }, false],
  ['dates: greater_than', { performer_registration_dt: { greater_than: '2019-01-01T00:00:00Z' } }, true],
  ['dates: less_than (date-only operand)', { performer_registration_dt: { less_than: '2020-01-01' } }, false],
  ['dates: with an offset', { performer_registration_dt: { less_than_or_equals: '2020-05-01T14:00:00+02:00' } }, true],
  ['dates: operand not a date', { performer_registration_dt: { greater_than: 'yesterday' } }, false, /ISO 8601 date/],
  ['comparing a string that is no date', { performer_name: { greater_than: 'A' } }, false, /number or an ISO 8601 date/],
  ['in', { mediawiki_skin: { in: ['vector', 'vector-2022'] } }, true],
  ['in fails', { mediawiki_skin: { in: ['minerva', 'timeless'] } }, false],
  ['in with a non-list operand', { mediawiki_skin: { in: 'vector-2022' } }, false, /must be a list/],
  ['not_in', { mediawiki_skin: { not_in: ['minerva'] } }, true],
  ['not_in fails', { mediawiki_skin: { not_in: ['vector-2022'] } }, false],
  ['contains (list)', { performer_groups: { contains: 'user' } }, true],
  ['contains fails', { performer_groups: { contains: 'sysop' } }, false],
  ['contains (string)', { page_title: { contains: 'Souls' } }, true],
  ['contains on a number', { performer_edit_count: { contains: 4 } }, false, /list or a string/],
  ['does_not_contain', { performer_groups: { does_not_contain: 'bot' } }, true],
  ['does_not_contain fails', { performer_groups: { does_not_contain: 'user' } }, false],
  ['not_contains (the JS docs\' spelling)', { performer_groups: { not_contains: 'bot' } }, true],
  ['contains_all', { performer_groups: { contains_all: ['user', 'autoconfirmed'] } }, true],
  ['contains_all fails', { performer_groups: { contains_all: ['user', 'sysop'] } }, false],
  ['contains_any', { performer_groups: { contains_any: ['sysop', 'user'] } }, true],
  ['contains_any fails', { performer_groups: { contains_any: ['sysop', 'bot'] } }, false],
  ['contains_any on a string value', { page_title: { contains_any: ['Dark'] } }, false, /the value must be a list/],
  ['a missing value fails any rule', { performer_edit_count_bucket: { not_equals: 'x' } }, false, /performer_edit_count_bucket is missing/],
  ['a null value fails any rule', { performer_language: { not_in: ['en'] } }, false, /is missing/],
  ['a missing group fails', { agent_client_platform: { equals: 'eventplane_js' } }, false, /missing/],
  ['several attributes: all must pass', { mediawiki_skin: { equals: 'vector-2022' }, performer_edit_count: { greater_than: 100 } }, false],
  ['unknown operator', { mediawiki_skin: { like: 'vector%' } }, false, /unknown operator like/],
  ['rules not an object', ['mediawiki_skin'], false, /invalid curation config/],
  ['an attribute\'s rules not an object', { mediawiki_skin: 'vector' }, false, /invalid curation config for mediawiki_skin/],
  ['no rules', undefined, true],
  ['empty rules', {}, true],
]

for (const [name, rules, pass, reason] of cases) {
  test(`curation: ${name}`, () => {
    const verdict = curate(event, rules)
    assert.equal(verdict.pass, pass, JSON.stringify(verdict))
    if (!verdict.pass && reason !== undefined) assert.match(verdict.reason, reason)
  })
}
