/**
 * Request rates on the intake (`rate_limits` in eventplane.yaml): a token bucket per client
 * address and one per producer, so that one client cannot take the intake's core from the
 * others. Past a bucket, 429 EVP_RATE_LIMITED with `Retry-After`; nothing of the request is
 * read or taken. Buckets are created on first use and forgotten once full again, so memory is
 * bounded by the clients of the last few seconds (and never above `maxKeys`).
 */
import proxyAddr from '@fastify/proxy-addr'
import { Counter, type Registry } from 'prom-client'
import { EventplaneError } from '../core/errors.ts'
import { clientKey } from '../core/http.ts'

export interface RateSettings {
  /** Requests per second a bucket refills with (0: no limit). */
  requests_per_s: number
  /** Requests a full bucket takes at once (0: twice the rate). */
  burst: number
}

export interface RateLimitSettings {
  per_ip: RateSettings
  per_producer: RateSettings
  /** Client addresses (and CIDRs) never limited. */
  exempt: readonly string[]
}

export interface RateLimiter {
  /**
   * Takes one request from the client's bucket (and the producer's, when named); the error
   * to answer when either is empty, with `details.retryAfterS`.
   */
  take(clientIp: string, producer?: string): EventplaneError | undefined
}

interface Bucket {
  tokens: number
  at: number
}

/** Buckets kept at most, per scope; past it the oldest are dropped (they start full again). */
const maxKeys = 100_000

export function createRateLimiter(settings: RateLimitSettings, options: { registry?: Registry; clock?: () => number } = {}): RateLimiter {
  const clock = options.clock ?? (() => performance.now())
  // proxy-addr parses the address on every call (several µs, a tenth of a one-event request):
  // its verdicts are remembered per address.
  const inExempt = settings.exempt.length === 0 ? () => false : proxyAddr.compile([...settings.exempt])
  const verdicts = new Map<string, boolean>()
  const exempt = (address: string) => {
    let verdict = verdicts.get(address)
    if (verdict === undefined) {
      verdict = inExempt(address, 0)
      if (verdicts.size >= maxKeys) verdicts.clear()
      verdicts.set(address, verdict)
    }
    return verdict
  }
  const limited = new Counter({
    name: 'eventplane_rate_limited_total',
    help: 'Intake requests refused with 429 EVP_RATE_LIMITED, by scope (ip: a client address over rate_limits.per_ip; producer: a producer over rate_limits.per_producer) and producer (its configured name; "-" for ip).',
    labelNames: ['scope', 'producer'] as const,
    registers: options.registry ? [options.registry] : [],
  })
  const scope = (rate: RateSettings, name: 'ip' | 'producer') => {
    const perSecond = rate.requests_per_s
    const burst = rate.burst > 0 ? rate.burst : Math.max(1, Math.ceil(perSecond * 2))
    const buckets = new Map<string, Bucket>()
    let sweptAt = clock()
    /** Buckets full again are forgotten (a new one starts full): every few seconds, or when too many. */
    const sweep = (now: number) => {
      sweptAt = now
      for (const [key, bucket] of buckets) if (bucket.tokens + ((now - bucket.at) / 1000) * perSecond >= burst) buckets.delete(key)
      if (buckets.size > maxKeys) for (const key of [...buckets.keys()].slice(0, buckets.size - maxKeys)) buckets.delete(key)
    }
    return {
      on: perSecond > 0,
      /** Seconds until a request is possible when the bucket is empty, else 0 (and one is taken). */
      take(key: string): number {
        const now = clock()
        if (now - sweptAt > 5000 || buckets.size > maxKeys) sweep(now)
        let bucket = buckets.get(key)
        if (bucket === undefined) buckets.set(key, (bucket = { tokens: burst, at: now }))
        else {
          bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond)
          bucket.at = now
        }
        if (bucket.tokens >= 1) {
          bucket.tokens -= 1
          return 0
        }
        return (1 - bucket.tokens) / perSecond
      },
      perSecond,
      name,
    }
  }
  const perIp = scope(settings.per_ip, 'ip')
  const perProducer = scope(settings.per_producer, 'producer')
  const refuse = (waitS: number, which: typeof perIp, producer: string | undefined) => {
    limited.inc({ scope: which.name, producer: producer ?? '-' })
    const retryAfterS = Math.max(1, Math.ceil(waitS))
    const whose = which.name === 'ip' ? 'this client address' : `producer ${producer}`
    const key = which.name === 'ip' ? 'rate_limits.per_ip' : 'rate_limits.per_producer'
    return new EventplaneError('EVP_RATE_LIMITED', `${whose} sends more than ${which.perSecond} requests a second (${key}); retry after ${retryAfterS} s`, {
      details: { scope: which.name, limit: which.perSecond, retryAfterS },
    })
  }
  return {
    take(clientIp, producer) {
      if (perIp.on && !exempt(clientIp)) {
        const wait = perIp.take(clientKey(clientIp))
        if (wait > 0) return refuse(wait, perIp, undefined)
      }
      if (perProducer.on && producer !== undefined) {
        const wait = perProducer.take(producer)
        if (wait > 0) return refuse(wait, perProducer, producer)
      }
      return undefined
    },
  }
}
