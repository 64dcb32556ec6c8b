// The live stream viewer at /v2/ui: plain browser JavaScript, no build step, nothing loaded
// from other hosts. It reads the stream names from the OpenAPI document (/?spec), as
// Wikimedia's EventStreams UI does, and follows /v2/stream/{streams} with an EventSource.

const MAX_ROWS = 300 // rows kept on the page
const MAX_HELD = 5000 // events kept while paused
const RATE_WINDOW_S = 10

const $ = (id) => document.getElementById(id)
const form = $('controls')
const tbody = $('events').tBodies[0]

let source = null
let paused = false
let held = []
let heldDropped = 0
let received = 0
let pending = [] // events waiting for the next animation frame
let frame = 0
const perSecond = new Map() // second → events received in it

init().catch((error) => showError(`Could not load the list of streams from /?spec: ${error.message}`))

async function init() {
  const response = await fetch('/?spec', { headers: { accept: 'application/json' } })
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`)
  const spec = await response.json()
  const names = spec.paths?.['/v2/stream/{streams}']?.get?.parameters?.[0]?.schema?.items?.enum ?? []
  const box = $('streams')
  $('streams-hint').textContent = names.length === 0 ? 'No stream is served: add streams with topics to the stream config.' : ''
  $('streams-hint').hidden = names.length > 0
  const wanted = new Set(fromHash().streams)
  for (const name of names) {
    const label = document.createElement('label')
    const input = document.createElement('input')
    input.type = 'checkbox'
    input.name = 'stream'
    input.value = name
    input.checked = wanted.has(name)
    const op = spec.paths[`/v2/stream/${name}`]?.get
    label.title = op?.description ?? name
    label.append(input, ` ${name}`)
    box.append(label)
  }
  const state = fromHash()
  $('filter').value = state.filter ?? ''
  $('canary').checked = state.canary === 'include'
  if (state.streams.length > 0 && state.streams.every((s) => names.includes(s))) connect()
}

form.addEventListener('submit', (event) => {
  event.preventDefault()
  if (source !== null) disconnect()
  else connect()
})
$('pause').addEventListener('click', () => (paused ? resume() : pause()))
$('clear').addEventListener('click', () => {
  tbody.replaceChildren()
  received = 0
  perSecond.clear()
  $('received').textContent = '0'
  $('empty').hidden = false
})

function selectedStreams() {
  return [...form.querySelectorAll('input[name=stream]:checked')].map((i) => i.value)
}

function connect() {
  const streams = selectedStreams()
  if (streams.length === 0) return showError('Pick at least one stream.')
  const params = new URLSearchParams()
  const filter = $('filter').value.trim()
  if (filter !== '') params.set('filter', filter)
  const since = Number($('since').value)
  if (since > 0) params.set('since', String(Date.now() - since))
  if ($('canary').checked) params.set('canary', 'include')
  const url = `/v2/stream/${streams.map(encodeURIComponent).join(',')}${params.size > 0 ? `?${params}` : ''}`
  toHash(streams, filter, $('canary').checked)
  showError(null)
  $('url-hint').textContent = `GET ${url}`
  setState('connecting', 'connecting…')
  source = new EventSource(url)
  const current = source
  source.addEventListener('open', () => current === source && setState(paused ? 'paused' : 'open', paused ? 'paused' : `connected to ${streams.join(', ')}`))
  source.addEventListener('message', (event) => current === source && onEvent(event.data))
  source.addEventListener('error', (event) => current === source && onError(event, url))
  $('connect').textContent = 'Disconnect'
  $('pause').disabled = false
}

function disconnect() {
  source?.close()
  source = null
  paused = false
  held = []
  $('held-wrap').hidden = true
  $('connect').textContent = 'Connect'
  $('pause').textContent = 'Pause'
  $('pause').disabled = true
  setState('idle', 'not connected')
}

function pause() {
  paused = true
  $('pause').textContent = 'Resume'
  $('held-wrap').hidden = false
  setState('paused', 'paused')
}

function resume() {
  paused = false
  $('pause').textContent = 'Pause'
  $('held-wrap').hidden = true
  const backlog = held
  held = []
  if (heldDropped > 0) showError(`${heldDropped} events arrived while paused beyond the ${MAX_HELD} kept; they are not shown.`)
  heldDropped = 0
  for (const data of backlog.slice(-MAX_ROWS)) queue(data)
  setState('open', 'connected')
}

function onEvent(data) {
  received++
  const second = Math.floor(Date.now() / 1000)
  perSecond.set(second, (perSecond.get(second) ?? 0) + 1)
  if (paused) {
    held.push(data)
    if (held.length > MAX_HELD) {
      held.shift()
      heldDropped++
    }
    return
  }
  queue(data)
}

function queue(data) {
  pending.push(data)
  if (frame === 0) frame = requestAnimationFrame(render)
}

// One DOM update per frame, however fast events arrive.
function render() {
  frame = 0
  const batch = pending.slice(-MAX_ROWS)
  pending = []
  const fragment = document.createDocumentFragment()
  for (let i = batch.length - 1; i >= 0; i--) fragment.append(row(batch[i]))
  tbody.prepend(fragment)
  const rows = tbody.querySelectorAll('tr.event')
  for (let i = MAX_ROWS; i < rows.length; i++) {
    const next = rows[i].nextElementSibling
    if (next?.classList.contains('detail')) next.remove()
    rows[i].remove()
  }
  $('empty').hidden = true
}

function row(data) {
  let event
  try {
    event = JSON.parse(data)
  } catch {
    event = { unparsed: data }
  }
  const meta = event.meta ?? {}
  const tr = document.createElement('tr')
  tr.className = 'event'
  tr.append(
    cell(typeof meta.dt === 'string' ? meta.dt.replace('T', ' ').replace(/Z$/, '') : ''),
    cell(meta.stream ?? ''),
    cell(meta.topic === undefined ? '' : `${meta.partition}/${meta.offset}`, 'position'),
    cell(summary(event)),
  )
  tr.title = meta.topic ?? ''
  tr.addEventListener('click', () => {
    const next = tr.nextElementSibling
    if (next?.classList.contains('detail')) return next.remove()
    const detail = document.createElement('tr')
    detail.className = 'detail'
    const td = cell(JSON.stringify(event, null, 2))
    td.colSpan = 4
    detail.append(td)
    tr.after(detail)
  })
  return tr
}

function cell(text, className) {
  const td = document.createElement('td')
  td.textContent = String(text)
  if (className) td.className = className
  return td
}

// A line about the event: its domain, then its first few short string fields.
function summary(event) {
  const parts = []
  if (event.meta?.domain) parts.push(event.meta.domain)
  for (const [key, value] of Object.entries(event)) {
    if (key === '$schema' || key === 'meta' || key === 'dt') continue
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') parts.push(`${key}: ${value}`)
    if (parts.length >= 5) break
  }
  return parts.join(' · ')
}

async function onError(event, url) {
  // `event: error` from the server: it says why, then ends the stream (the browser reconnects
  // and resumes from the last id).
  if (typeof event.data === 'string' && event.data !== '') {
    let detail = event.data
    try {
      const problem = JSON.parse(event.data)
      detail = `${problem.code ?? problem.type ?? 'error'}: ${problem.detail ?? problem.message ?? event.data}`
    } catch {
      // not JSON: show it as it came
    }
    showError(detail)
    return
  }
  if (source?.readyState === EventSource.CONNECTING) {
    setState('reconnecting', 'reconnecting… (the browser resumes from the last event seen)')
    return
  }
  // The server refused the stream: ask again to read its problem document.
  setState('error', 'refused')
  const wasSource = source
  disconnect()
  if (wasSource !== null) setState('error', 'refused')
  try {
    const controller = new AbortController()
    const response = await fetch(url, { headers: { accept: 'application/json' }, signal: controller.signal })
    if (response.ok) {
      controller.abort()
      showError('The stream closed; connect again.')
    } else {
      const problem = await response.json().catch(() => ({}))
      showError(`${response.status} ${problem.code ?? ''}: ${problem.detail ?? response.statusText}`)
    }
  } catch (error) {
    showError(`The server cannot be reached: ${error.message}`)
  }
}

function setState(state, text) {
  $('state').dataset.state = state
  $('state').textContent = text
}

function showError(message) {
  $('error').hidden = message === null
  $('error').textContent = message ?? ''
}

setInterval(() => {
  const now = Math.floor(Date.now() / 1000)
  let total = 0
  for (const [second, count] of perSecond) {
    if (second <= now - RATE_WINDOW_S) perSecond.delete(second)
    else if (second < now) total += count
  }
  $('rate').textContent = (total / (RATE_WINDOW_S - 1)).toFixed(1)
  $('received').textContent = String(received)
  $('held').textContent = String(held.length)
}, 500)

function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1))
  return {
    streams: (params.get('streams') ?? '').split(',').filter((s) => s !== ''),
    filter: params.get('filter'),
    canary: params.get('canary'),
  }
}

function toHash(streams, filter, canary) {
  const params = new URLSearchParams({ streams: streams.join(',') })
  if (filter !== '') params.set('filter', filter)
  if (canary) params.set('canary', 'include')
  history.replaceState(null, '', `#${params}`)
}
