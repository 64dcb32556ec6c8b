/** Contextual attributes: names from provide_values, split at the first `_`, null values left out, the platform always added. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addContext, requestedAttributes } from '../../packages/client/src/index.ts'

const values: Record<string, unknown> = {
  agent_client_platform: 'eventplane_js',
  agent_client_platform_family: 'desktop_browser',
  performer_edit_count_bucket: '5-99 edits',
  performer_session_id: 'eeeeeeeeeeeeeeeeeeee',
  page_title: 'Dark Souls',
  page_id: 30715282,
  page_wikidata_qid: null,
  mediawiki_database: 'enwiki',
}

const cases: Array<{ name: string; provide: unknown; expect: Record<string, unknown>; ignored?: unknown[] }> = [
  { name: 'nothing asked: the agent only', provide: undefined, expect: { agent: { client_platform: 'eventplane_js', client_platform_family: 'desktop_browser' } } },
  {
    name: 'split at the first underscore',
    provide: ['performer_edit_count_bucket', 'performer_session_id'],
    expect: { agent: { client_platform: 'eventplane_js', client_platform_family: 'desktop_browser' }, performer: { edit_count_bucket: '5-99 edits', session_id: 'eeeeeeeeeeeeeeeeeeee' } },
  },
  {
    name: 'null and unknown values are left out, never sent as null',
    provide: ['page_title', 'page_wikidata_qid', 'page_content_language', 'page_id'],
    expect: { agent: { client_platform: 'eventplane_js', client_platform_family: 'desktop_browser' }, page: { title: 'Dark Souls', id: 30715282 } },
  },
  {
    name: 'names that are not attributes are ignored and reported',
    provide: ['mediawiki_database', 'nounderscore', 42, '_x', 'Page_Title'],
    expect: { agent: { client_platform: 'eventplane_js', client_platform_family: 'desktop_browser' }, mediawiki: { database: 'enwiki' } },
    ignored: ['nounderscore', 42, '_x', 'Page_Title'],
  },
  {
    name: 'a single string is one name',
    provide: 'page_title',
    expect: { agent: { client_platform: 'eventplane_js', client_platform_family: 'desktop_browser' }, page: { title: 'Dark Souls' } },
  },
]

for (const c of cases) {
  test(`context: ${c.name}`, () => {
    const requested = requestedAttributes(c.provide)
    assert.deepEqual(requested.ignored, c.ignored ?? [])
    const event: Record<string, unknown> = { action: 'click' }
    addContext(event, requested.names, (name) => values[name])
    assert.deepEqual(event, { action: 'click', ...c.expect })
  })
}

test('context: a provider that throws counts as no value; fields already in a group are kept', () => {
  const event: Record<string, unknown> = { page: { namespace_id: 0 } }
  const missing = addContext(event, ['page_title', 'page_id'], (name) => {
    if (name === 'page_id') throw new Error('no page here')
    return 'Main Page'
  })
  assert.deepEqual(event, { page: { namespace_id: 0, title: 'Main Page' } })
  assert.deepEqual(missing, ['page_id'])
})
