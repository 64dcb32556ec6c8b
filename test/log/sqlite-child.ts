/**
 * A second process on the same log file, for sqlite.test.ts. Prints JSON lines on stdout.
 *
 *   follow PATH TOPIC PARTITION COUNT   reads from offset 0, following, until COUNT records
 *   produce PATH TOPIC SYNC             appends forever, printing each acknowledged position
 */
import { writeSync } from 'node:fs'
import { openSqliteLog } from '../../src/log/index.ts'

const [mode, path, topic, arg, arg2] = process.argv.slice(2)

function print(value: unknown): void {
  // Synchronous, so that a line printed is a line the parent sees, even after SIGKILL.
  writeSync(1, `${JSON.stringify(value)}\n`)
}

if (mode === 'follow') {
  const log = await openSqliteLog({ path: path!, defaultPartitions: 3, pollIntervalMs: 20 })
  const count = Number(arg2)
  let seen = 0
  print({ ready: true })
  for await (const record of log.read({ topic: topic!, partition: Number(arg), offset: 0 })) {
    print({ offset: record.offset, value: record.value.toString() })
    if (++seen >= count) break
  }
  await log.close()
} else if (mode === 'produce') {
  const log = await openSqliteLog({ path: path!, defaultPartitions: 3, sync: arg === 'full' ? 'full' : 'normal' })
  let sequence = 0
  print({ ready: true })
  for (;;) {
    // Waves of concurrent appends, so that SIGKILL lands amid group commits of several callers.
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const values = Array.from({ length: 1 + (sequence % 5) }, () => String(sequence++))
        const positions = await log.append(
          values.map((value, i) => ({ topic: topic!, ...(i % 2 === 0 ? { key: value } : {}), value })),
        )
        print({ acks: positions.map((p, i) => [p.partition, p.offset, values[i]]) })
      }),
    )
  }
} else {
  console.error(`unknown mode ${mode}`)
  process.exit(2)
}
