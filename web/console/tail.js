// The live tail (#/tail, also served at /v2/ui): pick streams, type a CEL filter that runs on
// the server, watch events arrive with their rate, pause and resume, click an event for all of
// it. Stream names come from the OpenAPI document (/?spec), as in Wikimedia's EventStreams UI,
// so only what the server serves is offered; events come from /v2/stream/{streams} through an
// EventSource, which resumes by itself from the last event id after a drop.

import { expandable, h, refusal, serverError, shortTime } from './dom.js'

const MAX_ROWS = 300 // rows kept on the page
const MAX_HELD = 5000 // events kept while paused
const RATE_WINDOW_S = 10

/** The view; `onStop(fn)` registers what ends it (the connection, the timer) when another view is shown. */
export async function tail(params, onStop) {
  const response = await fetch('/?spec', { headers: { accept: 'application/json' } })
  if (!response.ok) throw new Error(`/?spec: ${response.status} ${response.statusText}`)
  const spec = await response.json()
  const served = spec.paths?.['/v2/stream/{streams}'] !== undefined
  const names = spec.paths?.['/v2/stream/{streams}']?.get?.parameters?.[0]?.schema?.items?.enum ?? []

  const wanted = new Set((params.get('streams') ?? '').split(',').filter((s) => s !== ''))
  const streamBox = h(
    'fieldset',
    { id: 'streams' },
    h('legend', {}, 'Streams'),
    h('p', { class: 'hint', id: 'streams-hint', hidden: names.length > 0 }, served ? 'No stream is served: add streams with topics to the stream config.' : 'This server does not serve streams (it runs without the streams role).'),
    names.map((name) =>
      h('label', { title: spec.paths[`/v2/stream/${name}`]?.get?.description ?? name }, h('input', { type: 'checkbox', name: 'stream', value: name, checked: wanted.has(name) }), ` ${name}`),
    ),
  )
  const filter = h('input', { id: 'filter', name: 'filter', spellcheck: 'false', placeholder: 'meta.domain == "en.wikipedia.org" && !bot' })
  filter.value = params.get('filter') ?? ''
  const since = h(
    'select',
    { id: 'since', name: 'since' },
    h('option', { value: '' }, 'now (live only)'),
    h('option', { value: 'last=20' }, 'the last 20 events of each partition'),
    h('option', { value: '60000' }, '1 minute ago'),
    h('option', { value: '600000' }, '10 minutes ago'),
    h('option', { value: '3600000' }, '1 hour ago'),
    h('option', { value: '86400000' }, '1 day ago'),
  )
  const canary = h('input', { type: 'checkbox', id: 'canary', name: 'canary', checked: params.get('canary') === 'include' })
  const connectButton = h('button', { type: 'submit', id: 'connect' }, 'Connect')
  const pauseButton = h('button', { type: 'button', id: 'pause', disabled: true }, 'Pause')
  const clearButton = h('button', { type: 'button', id: 'clear' }, 'Clear')
  const form = h(
    'form',
    { id: 'controls', autocomplete: 'off' },
    streamBox,
    h(
      'fieldset',
      {},
      h('legend', {}, 'Filter'),
      h('label', { for: 'filter' }, 'CEL expression over each event (runs on the server)'),
      filter,
      h('label', { for: 'since' }, 'Start from'),
      since,
      h('label', { class: 'inline' }, canary, ' include canary events'),
    ),
    h('div', { class: 'buttons' }, connectButton, pauseButton, clearButton),
  )
  const state = h('span', { id: 'state', 'data-state': 'idle' }, 'not connected')
  const rate = h('b', { id: 'rate' }, '0.0')
  const receivedCount = h('b', { id: 'received' }, '0')
  const held = h('b', { id: 'held' }, '0')
  const heldWrap = h('span', { id: 'held-wrap', hidden: true }, 'held while paused ', held)
  const error = h('p', { id: 'error', role: 'alert', hidden: true })
  const urlHint = h('p', { class: 'hint', id: 'url-hint' })
  const tbody = h('tbody')
  const empty = h('p', { class: 'hint', id: 'empty' }, 'Pick one or more streams and connect. Click an event to see all of it.')

  let source = null
  let paused = false
  let heldEvents = []
  let heldDropped = 0
  let received = 0
  let pending = [] // events waiting for the next animation frame
  let frame = 0
  const perSecond = new Map() // second → events received in it

  const setState = (name, text) => {
    state.dataset.state = name
    state.textContent = text
  }
  const showError = (message) => {
    error.hidden = message === null
    error.textContent = message ?? ''
  }
  const selected = () => [...form.querySelectorAll('input[name=stream]:checked')].map((i) => i.value)

  function connect() {
    const streams = selected()
    if (streams.length === 0) return showError('Pick at least one stream.')
    const query = new URLSearchParams()
    const expression = filter.value.trim()
    if (expression !== '') query.set('filter', expression)
    if (since.value === 'last=20') query.set('last', '20')
    else if (Number(since.value) > 0) query.set('since', String(Date.now() - Number(since.value)))
    if (canary.checked) query.set('canary', 'include')
    const url = `/v2/stream/${streams.map(encodeURIComponent).join(',')}${query.size > 0 ? `?${query}` : ''}`
    const shown = new URLSearchParams({ streams: streams.join(',') })
    if (expression !== '') shown.set('filter', expression)
    if (canary.checked) shown.set('canary', 'include')
    // The choice is in the address, so the view can be shared (replaceState: no new render).
    history.replaceState(null, '', `#/tail?${shown}`)
    showError(null)
    urlHint.textContent = `GET ${url}`
    setState('connecting', 'connecting…')
    const current = (source = new EventSource(url))
    current.addEventListener('open', () => current === source && setState(paused ? 'paused' : 'open', paused ? 'paused' : `connected to ${streams.join(', ')}`))
    current.addEventListener('message', (event) => current === source && onEvent(event.data))
    current.addEventListener('error', (event) => current === source && onError(event, url))
    connectButton.textContent = 'Disconnect'
    pauseButton.disabled = false
  }

  function disconnect() {
    source?.close()
    source = null
    paused = false
    heldEvents = []
    heldWrap.hidden = true
    connectButton.textContent = 'Connect'
    pauseButton.textContent = 'Pause'
    pauseButton.disabled = true
    setState('idle', 'not connected')
  }

  function pause() {
    paused = true
    pauseButton.textContent = 'Resume'
    heldWrap.hidden = false
    setState('paused', 'paused')
  }

  function resume() {
    paused = false
    pauseButton.textContent = 'Pause'
    heldWrap.hidden = true
    const backlog = heldEvents
    heldEvents = []
    if (heldDropped > 0) showError(`${heldDropped} events arrived while paused beyond the ${MAX_HELD} kept; they are not shown.`)
    heldDropped = 0
    for (const data of backlog.slice(-MAX_ROWS)) queue(data)
    setState('open', 'connected')
  }

  function onEvent(data) {
    received++
    const second = Math.floor(Date.now() / 1000)
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1)
    if (!paused) return queue(data)
    heldEvents.push(data)
    if (heldEvents.length > MAX_HELD) {
      heldEvents.shift()
      heldDropped++
    }
  }

  function queue(data) {
    pending.push(data)
    if (frame === 0) frame = requestAnimationFrame(draw)
  }

  // One DOM update per frame, however fast events arrive.
  function draw() {
    frame = 0
    const batch = pending.slice(-MAX_ROWS)
    pending = []
    const fragment = document.createDocumentFragment()
    for (let i = batch.length - 1; i >= 0; i--) fragment.append(eventRow(batch[i]))
    tbody.prepend(fragment)
    const rows = tbody.querySelectorAll('tr.event')
    for (let i = MAX_ROWS; i < rows.length; i++) {
      const next = rows[i].nextElementSibling
      if (next?.classList.contains('detail')) next.remove()
      rows[i].remove()
    }
    empty.hidden = true
  }

  async function onError(event, url) {
    // `event: error` from the server says why, then the stream ends (the browser reconnects
    // and resumes from the last id).
    const fromServer = serverError(event)
    if (fromServer !== null) return showError(fromServer)
    if (source?.readyState === EventSource.CONNECTING) return setState('reconnecting', 'reconnecting… (the browser resumes from the last event seen)')
    // The server refused the stream: ask again to read its problem document.
    disconnect()
    setState('error', 'refused')
    showError(await refusal(url))
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    if (source !== null) disconnect()
    else connect()
  })
  pauseButton.addEventListener('click', () => (paused ? resume() : pause()))
  clearButton.addEventListener('click', () => {
    tbody.replaceChildren()
    received = 0
    perSecond.clear()
    receivedCount.textContent = '0'
    empty.hidden = false
  })
  const timer = setInterval(() => {
    const now = Math.floor(Date.now() / 1000)
    let total = 0
    for (const [second, count] of perSecond) {
      if (second <= now - RATE_WINDOW_S) perSecond.delete(second)
      else if (second < now) total += count
    }
    rate.textContent = (total / (RATE_WINDOW_S - 1)).toFixed(1)
    receivedCount.textContent = String(received)
    held.textContent = String(heldEvents.length)
  }, 500)
  onStop(() => {
    clearInterval(timer)
    if (frame !== 0) cancelAnimationFrame(frame)
    source?.close()
    source = null
  })
  if (wanted.size > 0 && [...wanted].every((s) => names.includes(s))) connect()

  return [
    h('h1', {}, 'Live tail'),
    h(
      'div',
      { class: 'tail' },
      form,
      h(
        'section',
        { id: 'live', 'aria-label': 'Events' },
        h('div', { id: 'status', role: 'status', 'aria-live': 'polite' }, state, h('span', {}, 'rate ', rate, '/s'), h('span', {}, 'received ', receivedCount), heldWrap),
        error,
        urlHint,
        h('table', { id: 'events' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'time'), h('th', { scope: 'col' }, 'stream'), h('th', { scope: 'col' }, 'position'), h('th', { scope: 'col' }, 'summary'))), tbody),
        empty,
      ),
    ),
  ]
}

/** A row for an event, which a click (or Enter) opens to show the whole event as JSON. */
function eventRow(data) {
  let event
  try {
    event = JSON.parse(data)
  } catch {
    event = { unparsed: data }
  }
  const meta = typeof event.meta === 'object' && event.meta !== null ? event.meta : {}
  const tr = h(
    'tr',
    { class: 'event', tabindex: 0, title: meta.topic ?? '' },
    h('td', {}, shortTime(meta.dt)),
    h('td', {}, meta.stream ?? ''),
    h('td', { class: 'position' }, meta.topic === undefined ? '' : `${meta.partition}/${meta.offset}`),
    h('td', {}, summary(event)),
  )
  return expandable(tr, () => JSON.stringify(event, null, 2))
}

/** A line about an event: its domain, then its first few short fields. */
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
