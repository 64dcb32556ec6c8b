import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject } from '../core/objects.ts'
import { configOption, serverUrl, write, type Command } from './command.ts'

export const produceCommand: Command = {
  path: ['produce'],
  summary: 'Send events (NDJSON or a JSON array) to an intake and print what happened to each.',
  usage: 'eventplane produce STREAM [FILE|-] [--url URL] [--schema URI] [--batch N] [--hasty]',
  help: `Reads events from FILE, or stdin when FILE is - or absent: one JSON event per line
(NDJSON), or one JSON array. Events without a stream get STREAM (meta.stream); with --schema,
events without $schema get URI. They are POSTed to URL/v1/events in batches, and one line is
printed per event: "accepted", or "invalid"/"error" with the code and the reason.
URL defaults to the server of the config (http://127.0.0.1:8192).

Exit codes: 0 every event accepted, 1 some were not (or the intake could not be reached), 2 usage.

Example:
  echo '{"$schema":"/eventplane/test/event/1.0.0","test":"hi"}' | eventplane produce test.event`,
  options: {
    ...configOption,
    url: { type: 'string', short: 'u', value: 'URL', description: 'Intake base URL (default: the configured server).' },
    schema: { type: 'string', short: 's', value: 'URI', description: '$schema for events that have none.' },
    batch: { type: 'string', short: 'b', value: 'N', description: 'Events per request (default 100).' },
    hasty: { type: 'boolean', description: 'Ask for 202 answers (no per-event results).' },
    quiet: { type: 'boolean', short: 'q', description: 'Print only failures and the summary.' },
  },
  maxPositionals: 2,
  async run({ values, positionals, stdout, stderr, env, cwd }) {
    const [stream, file = '-'] = positionals
    if (stream === undefined) throw new EventplaneError('EVP_CLI_USAGE', 'name the stream to produce to')
    const batch = values['batch'] === undefined ? 100 : Number(values['batch'])
    if (!Number.isInteger(batch) || batch < 1 || batch > 100000) throw new EventplaneError('EVP_CLI_USAGE', '--batch must be an integer from 1 to 100000')
    const url = serverUrl(values, env, cwd)
    const text = file === '-' ? await readStdin() : await readFile(resolve(cwd, file), 'utf8')
    const events = parseInput(text)
    for (const event of events) {
      if (!isPlainObject(event)) continue
      const meta = isPlainObject(event['meta']) ? event['meta'] : event['meta'] === undefined ? (event['meta'] = {}) : undefined
      if (meta !== undefined && meta['stream'] === undefined) meta['stream'] = stream
      if (typeof values['schema'] === 'string' && event['$schema'] === undefined) event['$schema'] = values['schema']
    }
    const endpoint = `${url.replace(/\/+$/, '')}/v1/events${values['hasty'] === true ? '?hasty=true' : ''}`
    let accepted = 0
    let failed = 0
    for (let start = 0; start < events.length; start += batch) {
      const chunk = events.slice(start, start + batch)
      let response: Response
      try {
        response = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chunk) })
      } catch (error) {
        throw new EventplaneError('EVP_LOG_UNAVAILABLE', `cannot reach ${endpoint}: ${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message}`, { cause: error })
      }
      const outcomes = await outcomesOf(response, chunk.length)
      outcomes.forEach((outcome, i) => {
        const line = `#${start + i + 1} ${outcome}`
        if (outcome === 'accepted' || outcome === 'received') {
          accepted++
          if (values['quiet'] !== true) write(stdout, line)
        } else {
          failed++
          write(stdout, line)
        }
      })
    }
    write(failed ? stderr : stdout, `${accepted} of ${events.length} events ${values['hasty'] === true ? 'sent (hasty)' : 'accepted'}${failed ? `; ${failed} not` : ''}`)
    return failed > 0 ? 1 : 0
  },
}

/** NDJSON (one event per line) or a single JSON array / object. */
function parseInput(text: string): unknown[] {
  const trimmed = text.trim()
  if (trimmed === '') throw new EventplaneError('EVP_BODY_EMPTY', 'no events in the input')
  if (trimmed.startsWith('[')) {
    try {
      return JSON.parse(trimmed) as unknown[]
    } catch (error) {
      throw new EventplaneError('EVP_BODY_INVALID_JSON', `the input is not a JSON array: ${(error as Error).message}`)
    }
  }
  return trimmed.split('\n').flatMap((line, i) => {
    if (line.trim() === '') return []
    try {
      return [JSON.parse(line) as unknown]
    } catch (error) {
      throw new EventplaneError('EVP_BODY_INVALID_JSON', `line ${i + 1} is not JSON: ${(error as Error).message}`)
    }
  })
}

/** One outcome per event of a batch, from the intake's answer. */
async function outcomesOf(response: Response, count: number): Promise<string[]> {
  if (response.status === 201) return Array<string>(count).fill('accepted')
  if (response.status === 202) return Array<string>(count).fill('received')
  const body = (await response.json().catch(() => undefined)) as
    | { invalid?: Item[]; error?: Item[]; code?: string; detail?: string }
    | undefined
  if (body === undefined || (!Array.isArray(body.invalid) && !Array.isArray(body.error))) {
    const why = body?.code ? `${body.code} ${body.detail ?? ''}` : `HTTP ${response.status} ${response.statusText}`
    return Array<string>(count).fill(`error ${why}`)
  }
  const outcomes = Array<string>(count).fill('accepted')
  for (const item of [...(body.invalid ?? []), ...(body.error ?? [])]) {
    if (typeof item.index === 'number' && item.index < count) outcomes[item.index] = `${item.status} ${item.context?.code ?? ''} ${item.context?.message ?? ''}`.trim()
  }
  return outcomes
}

interface Item {
  status: string
  index?: number
  context?: { code?: string; message?: string }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
