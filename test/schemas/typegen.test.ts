import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, it } from 'node:test'
import semver from 'semver'
import ts from 'typescript'
import { isPlainObject, type JsonObject } from '../../src/core/objects.ts'
import { parseYaml } from '../../src/core/yaml.ts'
import { schemasToTypeScript, schemaToTypeScript, typeNameFromTitle } from '../../src/schemas/typegen.ts'
import { fixtureRepo, fixtureSkipped } from '../helpers.ts'

const fixtureBase = join(fixtureRepo, 'jsonschema')

/** The newest materialized version of every title in the fixture repository. */
function latestFixtureSchemas(): JsonObject[] {
  const latest = new Map<string, { version: string; schema: JsonObject }>()
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry)
      if (statSync(path).isDirectory()) walk(path)
      else if (/^\d+\.\d+\.\d+\.yaml$/.test(entry)) {
        const version = entry.slice(0, -'.yaml'.length)
        const title = relative(fixtureBase, dir)
        const current = latest.get(title)
        if (current !== undefined && semver.lte(version, current.version)) continue
        const schema = parseYaml(readFileSync(path, 'utf8'), { source: path, code: 'EVP_SCHEMA_PARSE' }).value as JsonObject
        latest.set(title, { version, schema })
      }
    }
  }
  walk(fixtureBase)
  return [...latest.keys()].sort().map((title) => latest.get(title)!.schema)
}

interface Diagnostic {
  line: number
  code: number
  text: string
}

const compilerOptions: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  noUnusedLocals: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  lib: ['lib.es2022.d.ts'],
  types: [],
}
// Parsing TypeScript's lib files dominates a small compile; parse them once for all tests.
const libFiles = new Map<string, ts.SourceFile | undefined>()

/** Type-checks one in-memory module under `strict` and returns every diagnostic. */
function compile(code: string): Diagnostic[] {
  const file = '/virtual/generated.ts'
  const options = compilerOptions
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists, readFile } = host
  host.getSourceFile = (name, language, ...rest) => {
    if (name === file) return ts.createSourceFile(name, code, language)
    if (!libFiles.has(name)) libFiles.set(name, getSourceFile.call(host, name, language, ...rest))
    return libFiles.get(name)
  }
  host.fileExists = (name) => name === file || fileExists.call(host, name)
  host.readFile = (name) => (name === file ? code : readFile.call(host, name))
  const program = ts.createProgram([file], options, host)
  return ts.getPreEmitDiagnostics(program).map((d) => ({
    line: d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0,
    code: d.code,
    text: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
  }))
}

describe('typeNameFromTitle', () => {
  it('turns a title into a PascalCase identifier', () => {
    assert.equal(typeNameFromTitle('mediawiki/revision/create'), 'MediawikiRevisionCreate')
    assert.equal(typeNameFromTitle('mediawiki/page/prediction_classification_change'), 'MediawikiPagePredictionClassificationChange')
    assert.equal(typeNameFromTitle('api-gateway/request'), 'ApiGatewayRequest')
    assert.equal(typeNameFromTitle('w3c/reportingapi/network_error'), 'W3cReportingapiNetworkError')
    assert.equal(typeNameFromTitle('3d/model'), 'Schema3dModel')
    assert.equal(typeNameFromTitle('///'), 'Schema')
  })
})

describe('schemaToTypeScript', () => {
  const schema = {
    title: 'test/event',
    description: 'Schema used for simple tests',
    $id: '/test/event/1.0.0',
    type: 'object',
    required: ['$schema', 'meta'],
    properties: {
      $schema: { type: 'string', description: 'A URI identifying the JSONSchema.\nE.g. /schema/title/1.0.0' },
      meta: {
        type: 'object',
        required: ['stream'],
        properties: { stream: { type: 'string' }, dt: { type: 'string', format: 'date-time' } },
      },
      test: { type: 'string', default: 'default value' },
      test_map: { type: 'object', additionalProperties: { type: 'string' } },
      kind: { type: 'string', enum: ['a', "b'c"] },
      count: { type: 'integer' },
      maybe: { type: ['integer', 'null'] },
      list: { type: 'array', items: { type: ['string', 'null'] } },
      objs: { type: 'array', items: { type: 'object', properties: { x: { type: 'boolean' } } } },
      'content-type': { const: 'json' },
      mixed: { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'integer' } },
      open: { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: true },
      anything: {},
    },
  }

  it('writes an interface with doc comments, required and optional members', () => {
    assert.equal(
      schemaToTypeScript(schema),
      `/**
 * Schema used for simple tests
 *
 * Schema: /test/event/1.0.0
 */
export interface TestEvent {
  /**
   * A URI identifying the JSONSchema.
   * E.g. /schema/title/1.0.0
   */
  '$schema': string
  meta: {
    stream: string
    /** Format: date-time */
    dt?: string
  }
  /** @default "default value" */
  test?: string
  test_map?: Record<string, string>
  kind?: 'a' | 'b\\'c'
  count?: number
  maybe?: number | null
  list?: Array<string | null>
  objs?: {
    x?: boolean
  }[]
  'content-type'?: 'json'
  mixed?: {
    a?: string
    [key: string]: unknown
  }
  open?: {
    a?: string
    [key: string]: unknown
  }
  anything?: unknown
}
`,
    )
  })

  it('compiles, and checks values against the schema', () => {
    const code = `${schemaToTypeScript(schema)}
export const ok: TestEvent = { $schema: '/test/event/1.0.0', meta: { stream: 's' }, kind: 'a', maybe: null, test_map: { k: 'v' } }
export const badEnum: TestEvent = { $schema: '/test/event/1.0.0', meta: { stream: 's' }, kind: 'z' }
export const missingRequired: TestEvent = { $schema: '/test/event/1.0.0', meta: {} }
export const misspelt: TestEvent = { $schema: '/test/event/1.0.0', meta: { stream: 's' }, tset: 'x' }
`
    const lines = code.split('\n')
    const lineOf = (name: string): number => lines.findIndex((l) => l.includes(`const ${name}:`)) + 1
    const diagnostics = compile(code)
    assert.deepEqual(
      diagnostics.map((d) => d.line).sort((a, b) => a - b),
      [lineOf('badEnum'), lineOf('missingRequired'), lineOf('misspelt')],
    )
  })

  it('quotes names that are not plain identifiers and escapes comment ends', () => {
    const code = schemaToTypeScript({
      title: 'odd/names',
      type: 'object',
      properties: {
        'with space': { type: 'string', description: 'ends a comment */ early' },
        class: { type: 'string' },
        $ref: { type: 'string' },
        'line\nbreak': { type: 'boolean' },
      },
    })
    assert.match(code, /'with space'\?: string/)
    assert.match(code, /\n {2}class\?: string/)
    assert.match(code, /'\$ref'\?: string/)
    assert.match(code, /ends a comment \*\\\/ early/)
    assert.deepEqual(compile(code), [])
  })

  it('uses a type alias when the root is not an object with properties', () => {
    assert.equal(schemaToTypeScript({ title: 'a/map', type: 'object', additionalProperties: { type: 'integer' } }), 'export type AMap = Record<string, number>\n')
    assert.equal(schemaToTypeScript({ title: 'a/list', type: 'array', items: { enum: [1, 2, true, null] } }), 'export type AList = Array<1 | 2 | true | null>\n')
    assert.equal(
      schemaToTypeScript({ title: 'a/choice', oneOf: [{ type: 'string' }, { type: 'object', properties: { n: { type: 'number' } } }] }),
      'export type AChoice = string | {\n  n?: number\n}\n',
    )
    assert.equal(
      schemaToTypeScript({ title: 'a/both', allOf: [{ type: 'object', properties: { a: { type: 'string' } } }, { type: 'object', properties: { b: { type: 'string' } } }] }),
      'export type ABoth = {\n  a?: string\n} & {\n  b?: string\n}\n',
    )
    assert.equal(schemaToTypeScript({ title: 'a/tuple', type: 'array', items: [{ type: 'string' }, { type: 'integer' }], additionalItems: false }), "export type ATuple = [string, number]\n")
    assert.equal(schemaToTypeScript({ title: 'a/never', type: 'object', additionalProperties: false }), 'export type ANever = Record<string, never>\n')
  })

  it('takes the name from options', () => {
    assert.match(schemaToTypeScript({ title: 'a/b', type: 'string' }, { name: 'c/d' }), /^export type CD = string/)
    assert.match(schemaToTypeScript({ title: 'a/b', type: 'string' }, { exportName: 'Exact' }), /^export type Exact = string/)
    assert.throws(() => schemaToTypeScript({ type: 'string' }, { exportName: 'not valid' }), TypeError)
  })
})

describe('schemasToTypeScript', () => {
  it('gives later versions of one title their version as a suffix', () => {
    const code = schemasToTypeScript([
      { title: 'test/event', $id: '/test/event/1.0.0', type: 'string' },
      { title: 'test/event', $id: '/test/event/1.1.0', type: 'string' },
      { title: 'test/event', type: 'string' },
    ])
    assert.match(code, /^\/\/ Generated by Eventplane from 3 JSON schemas/)
    assert.deepEqual(
      [...code.matchAll(/export type (\w+)/g)].map((m) => m[1]),
      ['TestEvent', 'TestEventV1_1_0', 'TestEvent_2'],
    )
    assert.deepEqual(compile(code), [])
  })
})

describe('typegen on the Wikimedia primary schema repository', { skip: fixtureSkipped }, () => {
  const schemas = latestFixtureSchemas()

  it('compiles the declarations of every latest schema with zero diagnostics', () => {
    assert.equal(schemas.length, 53)
    const diagnostics = compile(schemasToTypeScript(schemas))
    assert.deepEqual(diagnostics, [])
  })

  /**
   * Paths of keys in `value` that the schema does not declare where the schema says nothing
   * about additionalProperties: JSON Schema lets them through, the generated types do not.
   */
  function undeclaredKeys(schema: unknown, value: unknown, path = ''): string[] {
    if (!isPlainObject(schema)) return []
    if (Array.isArray(value)) return value.flatMap((item, i) => undeclaredKeys(schema.items, item, `${path}/${i}`))
    if (!isPlainObject(value) || !isPlainObject(schema.properties)) return []
    const properties = schema.properties
    return Object.keys(value).flatMap((key) => {
      if (Object.hasOwn(properties, key)) return undeclaredKeys(properties[key], value[key], `${path}/${key}`)
      return schema.additionalProperties === undefined ? [`${path}/${key}`] : []
    })
  }

  it('accepts every fixture example whose keys the schema declares, and rejects exactly the others', () => {
    let code = schemasToTypeScript(schemas)
    const expected = new Map<number, string[]>()
    const names = [...code.matchAll(/^export (?:interface|type) (\w+)/gm)].map((m) => m[1]!)
    schemas.forEach((schema, i) => {
      const examples = Array.isArray(schema.examples) ? schema.examples : []
      examples.forEach((example, j) => {
        code += `\nexport const example_${i}_${j}: ${names[i]} = ${JSON.stringify(example)}`
        expected.set(code.split('\n').length, undeclaredKeys(schema, example).map((p) => `${String(schema.$id)}#${j} ${p}`))
      })
    })
    const byLine = new Map<number, number[]>()
    for (const d of compile(code)) byLine.set(d.line, [...(byLine.get(d.line) ?? []), d.code])
    let assignable = 0
    const rejected: string[] = []
    for (const [line, undeclared] of expected) {
      const codes = byLine.get(line) ?? []
      if (undeclared.length === 0) {
        assert.deepEqual(codes, [], `example on line ${line} should be assignable`)
        assignable++
      } else {
        // TS2353: "Object literal may only specify known properties".
        assert.ok(codes.length > 0 && codes.every((c) => c === 2353), `example on line ${line}: ${codes.join(',')}`)
        rejected.push(...undeclared)
      }
    }
    assert.ok(assignable >= 50, `${assignable} examples assignable`)
    // Wikimedia's own examples carry fields their schemas do not declare; JSON Schema lets
    // them through, the closed generated types do not. Three are typos (`dt"` in the YAML).
    assert.deepEqual(rejected.sort(), [
      '/development/network/probe/1.0.0#0 /reports/0/pulses/0/ttfb_ms',
      '/development/network/probe/1.0.0#0 /reports/0/pulses/1/ttfb_ms',
      '/development/network/probe/1.0.0#0 /reports/1/pulses/0/ttfb_ms',
      '/development/network/probe/1.0.0#0 /reports/1/pulses/1/ttfb_ms',
      '/mediawiki/cirrussearch/page_rerender/1.0.0#0 /meta/uid',
      '/mediawiki/revision/create/2.0.0#2 /meta/dt"',
      '/mediawiki/revision/create/2.0.0#2 /performer/user_groups"',
      '/mediawiki/revision/create/2.0.0#2 /performer/user_text"',
      '/mediawiki/revision/recommendation-create/1.0.0#0 /rev_content_changed',
      '/mediawiki/revision/recommendation-create/1.0.0#0 /rev_content_format',
      '/mediawiki/revision/recommendation-create/1.0.0#0 /rev_content_model',
      '/mediawiki/revision/recommendation-create/1.0.0#0 /rev_len',
      '/mediawiki/revision/recommendation-create/1.0.0#0 /rev_minor_edit',
      '/mediawiki/revision/recommendation-create/1.0.0#0 /rev_sha1',
      '/mediawiki/revision/tags-change/1.0.0#0 /rev_content_changed',
      '/mediawiki/revision/visibility-change/1.0.0#0 /rev_content_changed',
    ])
  })

  it('types the first example of mediawiki/revision/create', () => {
    const schema = schemas.find((s) => s.title === 'mediawiki/revision/create')!
    const example = (schema.examples as unknown[])[0]
    const code = `${schemaToTypeScript(schema)}\nexport const example: MediawikiRevisionCreate = ${JSON.stringify(example)}\n`
    assert.deepEqual(compile(code), [])
    const broken = `${schemaToTypeScript(schema)}\nexport const example: MediawikiRevisionCreate = ${JSON.stringify({ ...(example as object), rev_id: 'not a number' })}\n`
    assert.equal(compile(broken).length, 1)
  })
})
