import type { IncomingHttpHeaders } from 'node:http'
import type { Auth, Principal } from '../auth/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { eventStreams } from './intake.ts'

/**
 * Who may write events, in the two steps every intake route takes them (the node:http hot path,
 * the fastify route and `/v1/_test/events`, beacons): before the body is read, the request's
 * token and its client's rate; once its events are parsed, their streams.
 */
export interface Admission {
  /**
   * The producer (or reader) the request's token names, undefined without a token; or why it is
   * refused at once: a token nobody has (EVP_AUTH_INVALID), the client address or producer over
   * its rate (EVP_RATE_LIMITED).
   */
  admit(headers: IncomingHttpHeaders, clientIp: string): Principal | undefined | EventplaneError
  /** Why `who` may not write these events (a stream neither public nor its own), or undefined; always undefined with auth off. */
  authorize(who: Principal | undefined, events: readonly unknown[], defaultStream: string | undefined): EventplaneError | undefined
}

export interface AdmissionOptions {
  auth?: Auth | undefined
  /** Where an event names its stream (intake.stream_field). */
  streamField?: string | undefined
  /** The refusal for a client address (and producer) over its rate (server/rate-limits.ts). */
  rate?: ((clientIp: string, producer: string | undefined) => EventplaneError | undefined) | undefined
}

/** Admits everything: no auth, no rates (tests and embedders that configure neither). */
const open: Admission = { admit: () => undefined, authorize: () => undefined }

export function createAdmission(options: AdmissionOptions = {}): Admission {
  const { auth, rate } = options
  const streamField = options.streamField ?? 'meta.stream'
  if (auth?.enabled !== true && rate === undefined) return open
  return {
    admit(headers, clientIp) {
      const who = auth?.enabled === true ? auth.identify(headers) : undefined
      // checkWrite counts the bad token in the auth metric and returns it.
      if (who instanceof EventplaneError) return auth!.checkWrite(who, [])!
      return rate?.(clientIp, who?.kind === 'producer' ? who.name : undefined) ?? who
    },
    authorize(who, events, defaultStream) {
      if (auth?.enabled !== true) return undefined
      return auth.checkWrite(who, eventStreams(events, streamField, defaultStream))
    },
  }
}
