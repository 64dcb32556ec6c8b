import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject } from '../core/objects.ts'

/**
 * What a pipe saves to resume: the source's position past the last event the destination holds,
 * and the destination's own position where it has one (a file's size). `from` and `to` are the
 * endpoint URIs, so that a state file is never applied to another pipe.
 */
export interface PipeState {
  version: 1
  from: string
  to: string
  source: unknown
  sink: unknown
  /** Totals over every run that used this file. */
  totals: Record<string, number>
  updated: string
}

/** The state in `path`, undefined when there is no file yet; refuses one written for another pipe. */
export function loadState(path: string, from: string, to: string): PipeState | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new EventplaneError('EVP_PIPE_STATE_INVALID', `cannot read the state file ${path}: ${(error as Error).message}`, { cause: error })
  }
  let state: unknown
  try {
    state = JSON.parse(text)
  } catch (error) {
    throw new EventplaneError('EVP_PIPE_STATE_INVALID', `the state file ${path} is not JSON (${(error as Error).message}): fix or delete it`, { cause: error })
  }
  const s = state as Partial<PipeState>
  if (!isPlainObject(state) || s.version !== 1 || typeof s.from !== 'string' || typeof s.to !== 'string' || !isPlainObject(s.totals)) {
    throw new EventplaneError('EVP_PIPE_STATE_INVALID', `the state file ${path} is not a pipe state (version 1, from, to, source, sink, totals)`)
  }
  for (const [name, value, given] of [['source', s.from, from], ['destination', s.to, to]] as const) {
    if (value !== given) {
      throw new EventplaneError(
        'EVP_PIPE_STATE_INVALID',
        `the state file ${path} belongs to a pipe with ${name} ${value}, not ${given}: use another --state file (or delete this one to start over)`,
      )
    }
  }
  return state as unknown as PipeState
}

/** Writes the state atomically: a crash leaves the old file or the new one, never half of one. */
export function saveState(path: string, state: PipeState): void {
  mkdirSync(dirname(path), { recursive: true })
  const temporary = `${path}.${process.pid}.tmp`
  const fd = openSync(temporary, 'w')
  try {
    writeSync(fd, JSON.stringify(state, null, 2) + '\n')
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
}
