/** Outcomes counted per stream. */
export type RecentOutcome = 'accepted' | 'invalid' | 'error'

export interface RecentCounts {
  /** Length of one bucket, seconds. */
  interval_s: number
  /** Oldest first; the last is the bucket in progress. `start` is epoch ms. */
  buckets: Array<{ start: number; streams: Record<string, Partial<Record<RecentOutcome, number>>> }>
}

/**
 * Events by stream and outcome over the last few minutes, in fixed buckets: what the console's
 * intake page and stream sparklines draw (the Prometheus counters have no history). Bounded:
 * `buckets` buckets of at most `maxStreams` streams each (stream labels are bounded already:
 * streams made through a /regex/ key count under their key).
 */
export class RecentActivity {
  private readonly buckets: Array<{ start: number; streams: Map<string, Record<RecentOutcome, number>> }> = []

  constructor(
    private readonly intervalMs = 10_000,
    private readonly keep = 30,
    private readonly maxStreams = 1000,
  ) {}

  add(stream: string, outcome: RecentOutcome, n: number, now = Date.now()): void {
    const bucket = this.current(now)
    let counts = bucket.streams.get(stream)
    if (counts === undefined) {
      if (bucket.streams.size >= this.maxStreams) return
      bucket.streams.set(stream, (counts = { accepted: 0, invalid: 0, error: 0 }))
    }
    counts[outcome] += n
  }

  /** The whole window, `keep` buckets, the ones before the first event empty. */
  snapshot(now = Date.now()): RecentCounts {
    const last = this.current(now)
    const buckets: RecentCounts['buckets'] = []
    for (let i = this.keep - 1; i >= 0; i--) {
      const start = last.start - i * this.intervalMs
      const found = this.buckets.find((b) => b.start === start)
      buckets.push({ start, streams: found === undefined ? {} : Object.fromEntries(found.streams) })
    }
    return { interval_s: this.intervalMs / 1000, buckets }
  }

  /** The bucket of `now`, with empty buckets for any quiet intervals before it; older ones dropped. */
  private current(now: number) {
    const start = now - (now % this.intervalMs)
    const last = this.buckets.at(-1)
    if (last !== undefined && last.start >= start) return last // this bucket, or a clock set back: the last one
    const oldest = start - (this.keep - 1) * this.intervalMs
    while (this.buckets.length > 0 && this.buckets[0]!.start < oldest) this.buckets.shift()
    const from = this.buckets.length === 0 ? start : this.buckets.at(-1)!.start + this.intervalMs
    for (let at = from; at <= start; at += this.intervalMs) this.buckets.push({ start: at, streams: new Map() })
    return this.buckets.at(-1)!
  }
}
