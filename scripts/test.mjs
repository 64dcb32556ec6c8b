#!/usr/bin/env node
// Runs the test suites: every test/**/*.test.ts file (or the files and folders named on the
// command line) under node:test, with TypeScript loaded by tsx. Node 20's --test cannot glob
// .ts files itself, hence this script.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const args = process.argv.slice(2)
const flags = args.filter((a) => a.startsWith('--'))
const targets = args.filter((a) => !a.startsWith('--'))

function collect(path, out) {
  const stat = statSync(path)
  if (stat.isDirectory()) {
    for (const entry of readdirSync(path).sort()) {
      if (entry === 'node_modules' || entry.startsWith('.')) continue
      collect(join(path, entry), out)
    }
  } else if (path.endsWith('.test.ts')) {
    out.push(path)
  }
  return out
}

// A full run (no paths named) type-checks and lints first, so `npm test` is all CI needs.
if (targets.length === 0 && !process.env.EVENTPLANE_SKIP_STATIC) {
  for (const [name, args] of [
    ['typecheck', ['run', '--silent', 'typecheck']],
    ['lint', ['run', '--silent', 'lint']],
  ]) {
    console.log(`== ${name}`)
    const step = spawnSync('npm', args, { cwd: root, stdio: 'inherit' })
    if (step.status !== 0) {
      console.error(`${name} failed`)
      process.exit(step.status ?? 1)
    }
  }
}

const files = (targets.length ? targets : ['test']).flatMap((t) => collect(join(root, t), []))
if (files.length === 0) {
  console.error(`no test files found under ${targets.join(', ') || 'test'}`)
  process.exit(1)
}

// The Kafka suites (test/kafka/) share one real broker, started here from the Maven Central jars
// (scripts/kafka/broker.ts) and passed on in EVENTPLANE_TEST_KAFKA. In CI it must start; outside
// CI, without Java, the suites skip and this says so loudly.
const env = { ...process.env, NODE_ENV: 'test' }
let broker
if (files.some((f) => f.includes(`${join('test', 'kafka')}/`)) && !process.env.EVENTPLANE_TEST_KAFKA) {
  const java = spawnSync(process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java', ['-version'], { stdio: 'ignore' })
  if (java.error || java.status !== 0) {
    if (process.env.CI) {
      console.error('The Kafka suites need Java 17+ and Maven, and CI must run them: apt-get install openjdk-17-jre-headless maven (.ci/run does)')
      process.exit(1)
    }
    console.error(
      '\n' + '!'.repeat(78) + '\n' +
        '!! SKIPPING the Kafka suites (test/kafka/): no Java on this machine.\n' +
        '!! To run them: apt-get install openjdk-17-jre-headless maven, then npm test again.\n' +
        '!'.repeat(78) + '\n',
    )
    env.EVENTPLANE_TEST_KAFKA = 'skip'
  } else {
    broker = await startBroker()
    env.EVENTPLANE_TEST_KAFKA = broker.bootstrap
  }
}

// The fixture suites read Wikimedia's primary schema repository from ../shared (beside the
// clone). CI must have it; elsewhere its suites skip (test/helpers.ts fixtureSkipped), loudly.
const fixture = join(root, '..', 'shared', 'fixtures', 'wmf-schemas-primary')
if (!existsSync(fixture)) {
  if (process.env.CI) {
    console.error(`The fixture suites need ${fixture} (Wikimedia's primary schema repository), and CI must run them: put the shared folder beside the clone`)
    process.exit(1)
  }
  const using = files.filter((f) => /fixtureSkipped/.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f))
  console.error(
    '\n' + '!'.repeat(78) + '\n' +
      `!! SKIPPING the suites that read Wikimedia's primary schema repository: no\n` +
      `!! ${fixture}.\n` +
      `!! It comes with the shared folder beside the clone (../shared/fixtures); the\n` +
      `!! suites that skip (in part) are:\n` +
      using.map((f) => `!!   ${f}\n`).join('') +
      '!'.repeat(78) + '\n',
  )
}

// The soak (test/soak/) measures the server's event-loop delay and memory: it runs alone, after
// the other files, so that no other suite's work is counted as the server's.
const alone = files.filter((f) => f.includes(`${join('test', 'soak')}/`))
const together = files.filter((f) => !alone.includes(f))
console.log(`running ${files.length} test files${alone.length ? ` (${alone.map((f) => relative(root, f)).join(', ')} alone, last)` : ''}`)
const run = (group, concurrency) =>
  spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      // Per test file too: the failover suites start a 3-node cluster and run two scenarios (about 2 minutes).
      '--test-timeout=300000',
      `--test-concurrency=${concurrency}`,
      ...(process.env.CI ? ['--test-reporter=spec'] : []),
      ...flags,
      ...group.map((f) => relative(root, f)),
    ],
    { cwd: root, stdio: 'inherit', env },
  ).status ?? 1
const status = together.length ? run(together, process.env.TEST_CONCURRENCY ?? 2) : 0
await broker?.stop()
const soakStatus = alone.length ? run(alone, 1) : 0
process.exit(status || soakStatus)

/** Starts `scripts/kafka/broker.ts start` and resolves once it prints its address. */
function startBroker() {
  console.log('== kafka: starting a broker for the Kafka suites (the first run fetches its jars with Maven)')
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/kafka/broker.ts'), 'start', '--partitions', '3'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let errors = ''
  child.stderr.on('data', (chunk) => {
    errors += chunk
    if (errors.length > 100_000) errors = errors.slice(-50_000)
  })
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once('exit', resolve)
      child.kill('SIGTERM')
    })
  process.once('SIGINT', () => void stop().then(() => process.exit(130)))
  return new Promise((resolve) => {
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
      const match = /KAFKA_BOOTSTRAP=(\S+)/.exec(out)
      if (match) {
        console.log(`== kafka: broker ready at ${match[1]}`)
        child.off('exit', failed)
        resolve({ bootstrap: match[1], stop })
      }
    })
    const failed = (code) => {
      console.error(`The Kafka broker for the Kafka suites did not start (exit ${code}):\n${errors.trim().split('\n').slice(-30).join('\n')}`)
      process.exit(1)
    }
    child.once('exit', failed)
  })
}
