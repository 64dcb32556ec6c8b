import assert from 'node:assert/strict'
import { test } from 'node:test'
import { commandIndex, loadCommands } from '../../src/cli/commands.ts'
import { cli } from '../helpers.ts'

const commands = await loadCommands()

test('each entry of the command index loads the command at its path, and no path is listed twice', () => {
  commandIndex.forEach((entry, i) => assert.deepEqual(commands[i]!.path, entry.path))
  assert.equal(new Set(commandIndex.map((e) => e.path.join(' '))).size, commandIndex.length)
})

test('eventplane with no arguments lists every command', async () => {
  const result = await cli([])
  assert.equal(result.code, 0)
  for (const command of commands) assert.ok(result.stdout.includes(command.path.join(' ')), command.path.join(' '))
})

test('every subcommand answers --help with its usage and options', async () => {
  for (const command of commands) {
    const result = await cli([...command.path, '--help'])
    assert.equal(result.code, 0, command.path.join(' '))
    assert.ok(result.stdout.startsWith(`Usage: ${command.usage}`), command.path.join(' '))
    assert.match(result.stdout, /Options:/)
    for (const option of Object.keys(command.options)) assert.ok(result.stdout.includes(`--${option}`), `${command.path.join(' ')} --${option}`)
  }
})

test('a group word lists its commands', async () => {
  const result = await cli(['schema'])
  assert.equal(result.code, 0)
  assert.match(result.stdout, /schema materialize/)
  assert.doesNotMatch(result.stdout, /config check/)
})

test('unknown commands and options exit 2 with a usage hint', async () => {
  const unknown = await cli(['frobnicate'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /unknown command "frobnicate"/)
  const badOption = await cli(['config', 'check', '--nope'])
  assert.equal(badOption.code, 2)
  assert.match(badOption.stderr, /\[EVP_CLI_USAGE\]/)
  assert.match(badOption.stderr, /Usage: eventplane config check/)
  const extra = await cli(['config', 'check', 'extra'])
  assert.equal(extra.code, 2)
})

test('--version prints the package version', async () => {
  const result = await cli(['--version'])
  assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/)
})
