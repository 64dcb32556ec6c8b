import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { configSchema, envOverrides } from '../../src/config/index.ts'
import { repoRoot } from '../helpers.ts'

function keys(schema: unknown, prefix: string, out: string[]): string[] {
  const node = schema as { properties?: Record<string, unknown>; items?: unknown }
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name
    if (!(child as { properties?: unknown }).properties) out.push(path)
    keys(child, path, out)
    const items = (child as { items?: unknown }).items
    if (items) keys(items, `${path}[]`, out)
  }
  return out
}

test('docs/config.md documents every config key and environment variable', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'config.md'), 'utf8')
  for (const key of keys(configSchema, '', [])) assert.ok(doc.includes(`\`${key}\``), `docs/config.md lacks ${key}`)
  for (const { env } of envOverrides) assert.ok(doc.includes(`\`${env}\``), `docs/config.md lacks ${env}`)
})
