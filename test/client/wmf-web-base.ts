/**
 * Wikimedia's `analytics/product_metrics/web/base` 1.3.0 as a validator, for checking that
 * the SDK's events would be taken by Wikimedia's intake too. That schema lives in Wikimedia's
 * secondary schema repository, which we do not have; its common fields come from the primary
 * one, which we do (../shared/fixtures): `fragment/common` 2.0.0 and `fragment/http` 1.2.0 are
 * read from there, and the product-metrics fields are written here from the behaviour
 * reference (../shared/reference/wmf-clients.md §2.10). Where the reference leaves a bound
 * open, this is the stricter reading: no property the schema does not name (fragment/common's
 * `additionalProperties: false`, kept by jsonschema-tools' allOf merge), ids of 20 [0-9a-z].
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ValidateFunction } from 'ajv'
import { parse } from 'yaml'
import { newAjv } from '../../src/schemas/rules-ajv.ts'
import { fixtureRepo } from '../helpers.ts'

const fragments = join(fixtureRepo, 'jsonschema', 'fragment')

function fragment(path: string): { properties: Record<string, unknown>; required?: string[] } {
  return parse(readFileSync(join(fragments, path), 'utf8')) as { properties: Record<string, unknown>; required?: string[] }
}

const text = (maxLength: number) => ({ type: 'string', maxLength })
const id20 = { type: 'string', pattern: '^[0-9a-z]{20}$' }
const strings = { type: 'array', items: { type: 'string' } }

/** The product-metrics fields of web/base 1.3.0 (common 1.2.0 + web 1.1.0), reference §2.10. */
const productMetrics = {
  action: text(64),
  action_subtype: text(64),
  action_source: text(64),
  action_context: text(8192),
  element_id: text(64),
  element_friendly_name: text(64),
  funnel_name: text(64),
  funnel_entry_token: text(80),
  funnel_event_sequence_position: { type: 'integer', minimum: 1 },
  instrument_name: text(255),
  experiments: { type: 'object', properties: { enrolled: strings, assigned: { type: 'object' } } },
  sample: {
    type: 'object',
    properties: { unit: { type: 'string', enum: ['pageview', 'session', 'device'] }, rate: { type: 'number', minimum: 0, maximum: 1 } },
  },
  agent: {
    type: 'object',
    additionalProperties: false,
    properties: {
      client_platform: { type: 'string', enum: ['mediawiki_php', 'mediawiki_js', 'kaios', 'android', 'ios'] },
      client_platform_family: { type: 'string', enum: ['mobile_browser', 'desktop_browser', 'app'] },
      release_status: { type: 'string', enum: ['prod', 'dev', 'debug'] },
    },
  },
  page: {
    type: 'object',
    properties: {
      id: { type: 'integer', minimum: -1 },
      title: { type: 'string', minLength: 1 },
      namespace_id: { type: 'integer' },
      namespace_name: { type: 'string' },
      revision_id: { type: 'integer', maximum: 9007199254740991 },
      wikidata_qid: { type: 'string' },
      content_language: { type: 'string', minLength: 1, maxLength: 255 },
      is_redirect: { type: 'boolean' },
      user_groups_allowed_to_edit: strings,
      user_groups_allowed_to_move: strings,
    },
  },
  mediawiki: {
    type: 'object',
    properties: {
      database: { type: 'string' },
      skin: { type: 'string' },
      version: { type: 'string' },
      site_content_language: { type: 'string' },
      site_content_language_variant: { type: 'string' },
      // Not in web 1.1.0, yet Wikimedia's clients send them (§2.10): typed as they send them.
      is_production: { type: 'boolean' },
      is_debug_mode: { type: 'boolean' },
    },
  },
  performer: {
    type: 'object',
    properties: {
      is_logged_in: { type: 'boolean' },
      is_temp: { type: 'boolean' },
      id: { type: 'integer', minimum: 0 },
      name: { type: 'string' },
      session_id: id20,
      pageview_id: id20,
      groups: strings,
      is_bot: { type: 'boolean' },
      registration_dt: { type: 'string', format: 'date-time' },
      language: { type: 'string' },
      language_variant: { type: 'string' },
      can_probably_edit_page: { type: 'boolean' },
      edit_count: { type: 'integer', minimum: 0 },
      edit_count_bucket: { type: 'string', enum: ['0 edits', '1-4 edits', '5-99 edits', '100-999 edits', '1000+ edits'] },
      active_browsing_session_token: { type: 'string' },
    },
  },
}

let validate: ValidateFunction | undefined

/** A validator for Wikimedia's web/base 1.3.0 shape (ajv 8, draft-07, formats, all errors). */
export function wmfWebBase(): ValidateFunction {
  if (validate !== undefined) return validate
  const common = fragment('common/2.0.0.yaml')
  const http = fragment('http/1.2.0.yaml')
  validate = newAjv('draft-07', true).compile({
    $schema: 'https://json-schema.org/draft-07/schema#',
    type: 'object',
    additionalProperties: false,
    properties: { ...common.properties, ...http.properties, ...productMetrics },
    required: [...(common.required ?? []), 'action', 'agent'],
  })
  return validate
}
