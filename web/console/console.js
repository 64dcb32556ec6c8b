// The Eventplane console, served at / to browsers: plain browser JavaScript, no build step,
// nothing from other hosts. Every view reads the server's JSON APIs. Text from schemas, stream
// configs and events is only ever set as text (textContent), never parsed as HTML.

import { expandable, getJson, h, prettyJson, refusal, serverError, shortTime, svg } from './dom.js'
import { tail } from './tail.js'

const view = document.getElementById('view')

/**
 * Bars per bucket, stacked by outcome: accepted, invalid, error. `series` is one entry per
 * bucket: {accepted, invalid, error}.
 */
function bars(series, { width = 160, height = 28, label }) {
  const max = Math.max(1, ...series.map((b) => (b.accepted ?? 0) + (b.invalid ?? 0) + (b.error ?? 0)))
  const step = width / Math.max(1, series.length)
  const chart = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'chart' })
  chart.append(svg('title', {}, label))
  series.forEach((bucket, i) => {
    let y = height
    for (const outcome of ['accepted', 'invalid', 'error']) {
      const n = bucket[outcome] ?? 0
      if (n === 0) continue
      const h = (n / max) * (height - 1)
      y -= h
      chart.append(svg('rect', { x: (i * step + 0.5).toFixed(1), y: y.toFixed(1), width: Math.max(1, step - 1).toFixed(1), height: h.toFixed(1), class: outcome }))
    }
  })
  return chart
}

/** Per stream: its counts per bucket, and its totals. */
function byStream(recent) {
  const streams = new Map()
  recent.buckets.forEach((bucket, i) => {
    for (const [name, counts] of Object.entries(bucket.streams)) {
      if (!streams.has(name)) streams.set(name, { series: recent.buckets.map(() => ({})), totals: { accepted: 0, invalid: 0, error: 0 } })
      const entry = streams.get(name)
      entry.series[i] = counts
      for (const outcome of ['accepted', 'invalid', 'error']) entry.totals[outcome] += counts[outcome] ?? 0
    }
  })
  return streams
}

// The live tail was the page /v2/ui; that address (and its #streams=… links) opens it here.
if (/^\/v2\/ui\/?$/.test(location.pathname)) history.replaceState(null, '', `/#/tail${location.hash.length > 1 ? `?${location.hash.slice(1)}` : ''}`)

/** Hash patterns and their views; the tail's query is read undecoded (a filter may hold `&`). */
const routes = [
  [/^#?\/?$/, home],
  [/^#\/schemas\/?(?:\?title=(.*))?$/, schemas],
  [/^#\/schemas\/([^/]+)\/(.+?)(?:@([^@/]+))?$/, schema],
  [/^#\/streams\/?$/, streams],
  [/^#\/intake\/?$/, intake],
  [/^#\/tail\/?(?:\?(.*))?$/, (query) => tail(new URLSearchParams(query ?? ''), (stop) => (stopView = stop)), { raw: true }],
]

/** Work a view started that must stop when another view is shown (polling, a connection). */
let stopView = () => {}
let first = true

async function render() {
  const raw = location.hash
  const hash = decodeURIComponent(raw)
  const section = hash.split(/[/?]/)[1] ?? ''
  for (const link of document.querySelectorAll('nav a[data-section]')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  const started = performance.now()
  stopView()
  stopView = () => {}
  for (const [pattern, show, options] of routes) {
    const match = pattern.exec(options?.raw ? raw : hash)
    if (match === null) continue
    try {
      const content = await show(...match.slice(1))
      view.replaceChildren(...content.flat().filter((node) => node !== null && node !== undefined && node !== false))
    } catch (error) {
      view.replaceChildren(h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, error.message))
    }
    // How long the view took, and for the first one, how long since the page was asked for
    // (the browser test reads both).
    view.dataset.renderMs = String(Math.round(performance.now() - started))
    if (first) view.dataset.firstRenderMs = String(Math.round(performance.now()))
    first = false
    document.title = `${view.querySelector('h1')?.textContent ?? ''} · Eventplane`
    return
  }
  view.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the start')))
}

async function home() {
  const [index, repositories, configs] = await Promise.all([getJson('/'), getJson('/repositories').catch(() => []), getJson('/v1/stream-configs').catch(() => ({}))])
  const titles = (await Promise.all(repositories.map((r) => getJson(`/repositories/${encodeURIComponent(r.name)}/titles`).catch(() => [])))).flat()
  const streamCount = Object.keys(configs).filter((name) => !name.startsWith('/')).length
  const card = (title, number, text, href) => h('div', { class: 'card' }, h('a', { href }, h('div', { class: 'number' }, number), h('div', {}, title)), h('div', { class: 'hint' }, text))
  return [
    h('h1', {}, `Eventplane ${index.version ?? ''}`),
    h('p', { class: 'hint' }, `Roles: ${(index.roles ?? []).join(', ')}`),
    h(
      'div',
      { class: 'cards' },
      card('Schemas', titles.length, `in ${repositories.length} ${repositories.length === 1 ? 'repository' : 'repositories'}: fields, versions, examples`, '#/schemas'),
      card('Streams', streamCount, 'their config, schema and topics', '#/streams'),
      card('Live tail', '▶', 'follow streams as events arrive, with a filter', '#/tail'),
      card('API', '{ }', 'every endpoint, with one path per stream', '/?doc'),
    ),
  ]
}

async function schemas(title) {
  const repositories = await getJson('/repositories')
  const lists = await Promise.all(repositories.map(async (r) => ({ name: r.name, titles: await getJson(`/repositories/${encodeURIComponent(r.name)}/titles`) })))
  const search = h('input', { type: 'search', id: 'schema-search', placeholder: 'Filter titles', 'aria-label': 'Filter schema titles' })
  const sections = lists.map(({ name, titles }) =>
    h(
      'section',
      { 'data-repository': name },
      h('h2', {}, `${name} `, h('span', { class: 'muted' }, `(${titles.length} titles)`)),
      h(
        'ul',
        { class: 'titles' },
        titles.map((t) =>
          h(
            'li',
            { 'data-title': t.title },
            h('a', { href: `#/schemas/${name}/${t.title}` }, t.title),
            ' ',
            t.latest ? h('span', { class: 'chips' }, t.versions.map((v) => h('a', { href: `#/schemas/${name}/${t.title}@${v}` }, v))) : h('span', { class: 'muted' }, 'not materialized'),
          ),
        ),
      ),
    ),
  )
  const apply = () => {
    const wanted = search.value.trim().toLowerCase()
    for (const item of sections.flatMap((s) => [...s.querySelectorAll('li[data-title]')])) item.hidden = wanted !== '' && !item.dataset.title.toLowerCase().includes(wanted)
  }
  search.addEventListener('input', apply)
  if (title !== undefined) {
    search.value = title
    apply()
  }
  return [h('h1', {}, 'Schemas'), search, ...sections]
}

async function schema(repository, title, version) {
  const titles = await getJson(`/repositories/${encodeURIComponent(repository)}/titles`)
  const entry = titles.find((t) => t.title === title)
  if (entry === undefined) throw new Error(`no schema titled ${title} in ${repository}`)
  const shown = version ?? entry.latest
  if (shown === null || shown === undefined) return [h('h1', {}, title), h('p', { class: 'hint' }, 'No version is materialized yet.')]
  const base = `/repositories/${encodeURIComponent(repository)}/jsonschema/${title}/${shown}`
  const doc = await getJson(base)
  const examples = Array.isArray(doc.examples) ? doc.examples : []
  return [
    h('p', { class: 'muted' }, h('a', { href: '#/schemas' }, 'Schemas'), ` / ${repository}`),
    h('h1', {}, title, ' ', h('span', { class: 'muted' }, shown)),
    doc.description ? h('p', {}, doc.description) : null,
    h('nav', { class: 'versions', 'aria-label': 'Versions' }, entry.versions.map((v) => h('a', { href: `#/schemas/${repository}/${title}@${v}`, 'aria-current': v === shown ? 'page' : null }, v))),
    h('p', {}, h('span', { class: 'muted' }, doc.$id ?? ''), ' · ', h('a', { href: `${base}.yaml` }, 'YAML'), ' · ', h('a', { href: `${base}.json` }, 'JSON')),
    h('h2', {}, 'Fields'),
    fieldTable(doc),
    entry.versions.length > 1 ? compare(repository, title, entry.versions, shown) : null,
    h('h2', {}, `Examples (${examples.length})`),
    examples.length === 0 ? h('p', { class: 'hint' }, 'This version has no example.') : examples.map((e) => h('pre', {}, JSON.stringify(e, null, 2))),
    await tryIt(doc, examples[0]),
  ]
}

/** A form that posts an event of this schema (its first example, to a stream that takes it) and shows the answer. */
async function tryIt(doc, example) {
  const configs = await getJson('/v1/stream-configs').catch(() => ({}))
  const stream = Object.entries(configs).find(([name, settings]) => !name.startsWith('/') && settings.schema_title === doc.title)?.[0]
  const event = structuredClone(example ?? { $schema: doc.$id })
  if (stream !== undefined) event.meta = { ...(typeof event.meta === 'object' && event.meta !== null ? event.meta : {}), stream }
  if (event.meta !== undefined) delete event.meta.dt
  const text = h('textarea', { id: 'try-event', rows: 12, spellcheck: 'false', 'aria-label': 'Event to send (JSON)' })
  text.value = JSON.stringify(event, null, 2)
  const send = h('button', { type: 'button', id: 'try-send' }, 'Send to /v1/events')
  const result = h('div', { id: 'try-result', 'aria-live': 'polite' })
  send.addEventListener('click', async () => {
    let body
    try {
      body = JSON.stringify(JSON.parse(text.value))
    } catch (error) {
      result.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Not JSON: ${error.message}`))
      return
    }
    send.disabled = true
    try {
      const response = await fetch('/v1/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      const answer = await response.text()
      const ok = response.status === 201 || response.status === 202
      result.replaceChildren(
        h('p', { class: ok ? 'verdict ok' : 'verdict bad', 'data-status': response.status }, `${response.status} ${ok ? 'accepted' : response.statusText}`),
        answer === '' ? null : h('pre', {}, prettyJson(answer)),
      )
    } catch (error) {
      result.replaceChildren(h('p', { class: 'error', role: 'alert' }, error.message))
    } finally {
      send.disabled = false
    }
  })
  return h(
    'section',
    { 'aria-labelledby': 'try-heading' },
    h('h2', { id: 'try-heading' }, 'Try it'),
    h('p', { class: 'hint' }, stream === undefined ? 'No stream takes this schema: set meta.stream to one that does.' : `Posts the event to the stream ${stream}; the intake fills in meta.id, meta.dt and the rest.`),
    text,
    h('p', {}, send),
    result,
  )
}

/** Two versions side by side: what changed, and whether the newer one is compatible. */
function compare(repository, title, versions, shown) {
  const at = versions.indexOf(shown)
  const [from, to] = at > 0 ? [versions[at - 1], shown] : [shown, versions[at + 1]]
  const select = (id, label, value) =>
    h('label', {}, `${label} `, h('select', { id }, versions.map((v) => h('option', { value: v, selected: v === value }, v))))
  const result = h('div', { id: 'diff', 'aria-live': 'polite' })
  const section = h('section', { 'aria-labelledby': 'compare-heading' }, h('h2', { id: 'compare-heading' }, 'Compare versions'), h('p', {}, select('diff-from', 'from', from), ' ', select('diff-to', 'to', to)), result)
  const update = async () => {
    const a = section.querySelector('#diff-from').value
    const b = section.querySelector('#diff-to').value
    try {
      const diff = await getJson(`/repositories/${encodeURIComponent(repository)}/diff?title=${encodeURIComponent(title)}&from=${encodeURIComponent(a)}&to=${encodeURIComponent(b)}`)
      const verdict =
        diff.compatible === null
          ? h('p', { class: 'hint verdict' }, diff.note)
          : diff.compatible
            ? h('p', { class: 'verdict ok' }, `${b} is compatible with ${a}: events valid against ${a} are valid against ${b}.`)
            : h('div', { class: 'verdict bad' }, h('p', {}, `${b} is not compatible with ${a}:`), h('ul', {}, diff.problems.map((p) => h('li', {}, h('code', {}, p.path || '/'), ` ${p.message}`))))
      const show = (value) => (value === undefined ? '' : JSON.stringify(value))
      result.replaceChildren(
        verdict,
        diff.entries.length === 0
          ? h('p', { class: 'hint' }, 'No differences.')
          : h(
              'table',
              { class: 'diff' },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Change'), h('th', { scope: 'col' }, 'Where'), h('th', { scope: 'col' }, a), h('th', { scope: 'col' }, b))),
              h('tbody', {}, diff.entries.map((e) => h('tr', { class: e.kind }, h('td', {}, e.kind), h('td', { class: 'path' }, e.path || '/'), h('td', { class: 'rules' }, show(e.oldValue)), h('td', { class: 'rules' }, show(e.newValue))))),
            ),
      )
    } catch (error) {
      result.replaceChildren(h('p', { class: 'error', role: 'alert' }, error.message))
    }
  }
  section.addEventListener('change', update)
  update()
  return section
}

/** Every field of a schema, nested objects and array items included, one row each. */
function fieldTable(schema) {
  const rows = []
  // A path is a list of names: a field name may itself hold a dot.
  const walk = (node, path, required) => {
    if (node === null || typeof node !== 'object') return
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const here = [...path, name]
      rows.push(row(here, child, required.includes(name)))
      walk(child, here, Array.isArray(child?.required) ? child.required : [])
      if (child?.type === 'array' && child.items && typeof child.items === 'object') walk(child.items, [...path, `${name}[]`], Array.isArray(child.items.required) ? child.items.required : [])
    }
    if (node.additionalProperties && typeof node.additionalProperties === 'object') {
      rows.push(row([...path, '*'], node.additionalProperties, false))
      walk(node.additionalProperties, [...path, '*'], [])
    }
  }
  walk(schema, [], Array.isArray(schema.required) ? schema.required : [])
  return h(
    'table',
    { class: 'fields' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Required'), h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col' }, 'Constraints'))),
    h('tbody', {}, rows),
  )
}

function row(path, node, required) {
  const type = Array.isArray(node?.type) ? node.type.join(' | ') : (node?.type ?? (node?.enum ? 'enum' : node?.const !== undefined ? 'const' : 'any'))
  const rules = []
  for (const key of ['format', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems']) if (node?.[key] !== undefined) rules.push(`${key}: ${node[key]}`)
  if (Array.isArray(node?.enum)) rules.push(`one of: ${node.enum.map((v) => JSON.stringify(v)).join(', ')}`)
  if (node?.const !== undefined) rules.push(`= ${JSON.stringify(node.const)}`)
  if (node?.default !== undefined) rules.push(`default: ${JSON.stringify(node.default)}`)
  return h(
    'tr',
    { 'data-field': path.join('.') },
    h('td', { class: 'path' }, h('span', { class: 'depth' }, path.slice(0, -1).map((p) => `${p}.`).join('')), path.at(-1)),
    h('td', { class: 'type' }, type),
    h('td', {}, required ? h('span', { class: 'required' }, 'required') : ''),
    h('td', {}, node?.description ?? ''),
    h('td', { class: 'rules' }, rules.join('; ')),
  )
}

/** Where each schema title lives: the first repository that has it, with its versions. */
async function schemaIndex() {
  const repositories = await getJson('/repositories').catch(() => [])
  const lists = await Promise.all(repositories.map((r) => getJson(`/repositories/${encodeURIComponent(r.name)}/titles`).then((titles) => titles.map((t) => ({ ...t, repository: r.name }))).catch(() => [])))
  const byTitle = new Map()
  for (const entry of lists.flat()) if (!byTitle.has(entry.title)) byTitle.set(entry.title, entry)
  return byTitle
}

/** A stream's accepted events over the window, as bars and a rate. */
function activityCell(cell, name, recent, entry) {
  if (entry === undefined || recent === null) return cell.replaceChildren(h('span', { class: 'muted' }, '–'))
  const seconds = recent.buckets.length * recent.interval_s
  cell.replaceChildren(h('span', { class: 'rate' }, bars(entry.series, { width: 120, height: 22, label: `${name}: ${entry.totals.accepted} accepted in ${seconds / 60} min` }), ` ${entry.totals.accepted} · ${(entry.totals.accepted / seconds).toFixed(2)}/s`))
}

/** Rows drawn before the page shows; the rest follow a chunk per frame, so a long list shows at once. */
const firstRows = 150
const rowsPerFrame = 400

async function streams() {
  const [configs, recent, titles] = await Promise.all([getJson('/v1/stream-configs'), getJson('/v1/intake/recent').catch(() => null), schemaIndex()])
  const entries = Object.entries(configs).sort(([a], [b]) => (a < b ? -1 : 1))
  let latest = recent
  let activity = recent === null ? new Map() : byStream(recent)
  const cells = new Map()
  const search = h('input', { type: 'search', id: 'stream-search', placeholder: 'Filter streams', 'aria-label': 'Filter streams' })
  const shown = (row) => {
    const wanted = search.value.trim().toLowerCase()
    row.hidden = wanted !== '' && !row.dataset.stream.toLowerCase().includes(wanted)
  }
  const makeRow = ([name, settings]) => {
    const cell = h('td', { class: 'activity' })
    cells.set(name, cell)
    activityCell(cell, name, latest, activity.get(name))
    const title = typeof settings.schema_title === 'string' ? settings.schema_title : null
    const found = title === null ? undefined : titles.get(title)
    const details = h('details', {}, h('summary', {}, 'config'))
    // The settings as JSON, made when first opened.
    details.addEventListener('toggle', () => details.childElementCount === 1 && details.append(h('pre', {}, JSON.stringify(settings, null, 2))), { once: true })
    const row = h(
      'tr',
      { 'data-stream': name },
      h('td', { class: 'path' }, name.startsWith('/') ? name : h('a', { href: `#/tail?streams=${encodeURIComponent(name)}` }, name)),
      h(
        'td',
        {},
        title === null
          ? ''
          : found === undefined
            ? h('span', { title: 'no repository here has this title' }, title)
            : [h('a', { href: `#/schemas/${found.repository}/${title}` }, title), ' ', h('span', { class: 'muted' }, found.latest ? found.versions.join(' → ') : 'not materialized')],
      ),
      h('td', { class: 'tags' }, (Array.isArray(settings.topics) ? settings.topics : []).map((t) => h('span', {}, t))),
      cell,
      h('td', {}, settings.description ?? '', details),
    )
    shown(row)
    return row
  }
  const tbody = h('tbody')
  let built = 0
  let frame = 0
  const build = (n) => {
    const end = Math.min(entries.length, built + n)
    const fragment = document.createDocumentFragment()
    for (; built < end; built++) fragment.append(makeRow(entries[built]))
    tbody.append(fragment)
    if (built < entries.length) frame = requestAnimationFrame(() => build(rowsPerFrame))
  }
  build(firstRows)
  search.addEventListener('input', () => {
    for (const row of tbody.children) shown(row)
  })
  const timer =
    recent === null
      ? 0
      : setInterval(
          () =>
            getJson('/v1/intake/recent').then((next) => {
              latest = next
              activity = byStream(next)
              for (const [name, cell] of cells) activityCell(cell, name, latest, activity.get(name))
            }, () => {}),
          5000,
        )
  stopView = () => {
    clearInterval(timer)
    cancelAnimationFrame(frame)
  }
  return [
    h('h1', {}, 'Streams'),
    h('p', { class: 'hint' }, `${entries.length} streams in the stream config; rates are updated every 5 seconds. `, h('a', { href: '#/tail' }, 'Follow them live'), '.'),
    search,
    h(
      'table',
      { class: 'streams' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Stream'), h('th', { scope: 'col' }, 'Schema and its versions'), h('th', { scope: 'col' }, 'Topics'), h('th', { scope: 'col' }, 'Accepted, last 5 min'), h('th', { scope: 'col' }, 'Description'))),
      tbody,
    ),
  ]
}

async function intake() {
  const table = h('tbody')
  const summary = h('p', { class: 'hint' })
  const refresh = async () => {
    const recent = await getJson('/v1/intake/recent')
    const streams = [...byStream(recent)].sort(([a], [b]) => (a < b ? -1 : 1))
    summary.textContent = `Events the intake took (accepted), refused for what they are (invalid) or could not store (error), per stream, in ${recent.interval_s}-second bars over the last ${(recent.buckets.length * recent.interval_s) / 60} minutes. Updated every 5 seconds.`
    table.replaceChildren(
      ...(streams.length === 0
        ? [h('tr', {}, h('td', { colspan: 5, class: 'hint' }, 'No events yet. Post some to /v1/events.'))]
        : streams.map(([name, { series, totals }]) =>
            h(
              'tr',
              { 'data-stream': name },
              h('td', { class: 'path' }, name),
              h('td', { class: 'count accepted' }, totals.accepted),
              h('td', { class: 'count invalid' }, totals.invalid),
              h('td', { class: 'count errored' }, totals.error),
              h('td', {}, bars(series, { width: 240, height: 32, label: `${name}: ${totals.accepted} accepted, ${totals.invalid} invalid, ${totals.error} errors` })),
            ),
          )),
    )
  }
  const [index] = await Promise.all([getJson('/'), refresh()])
  const timer = setInterval(() => refresh().catch(() => {}), 5000)
  const errors = await latestErrors(index.error_stream)
  stopView = () => {
    clearInterval(timer)
    errors.stop()
  }
  return [
    h('h1', {}, 'Intake'),
    summary,
    h('table', { class: 'intake' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Stream'), h('th', { scope: 'col' }, 'Accepted'), h('th', { scope: 'col' }, 'Invalid'), h('th', { scope: 'col' }, 'Error'), h('th', { scope: 'col' }, 'Last 5 minutes'))), table),
    errors.section,
  ]
}

const maxErrorRows = 20

/**
 * The latest refused events with the reason, followed live from the error stream when this
 * server serves it (streams.expose_error_stream); otherwise a note saying where they are.
 */
async function latestErrors(info) {
  const heading = h('h2', { id: 'errors-heading' }, 'Latest validation errors')
  const section = (...content) => h('section', { 'aria-labelledby': 'errors-heading', id: 'errors' }, heading, ...content)
  if (info === undefined) return { section: section(h('p', { class: 'hint' }, 'This server writes no error events (intake.error_stream is not set).')), stop: () => {} }
  if (!info.served) {
    const configs = await getJson('/v1/stream-configs').catch(() => ({}))
    const topic = configs[info.name]?.topics?.[0]
    return {
      section: section(
        h(
          'p',
          { class: 'hint', id: 'errors-hidden' },
          `Each refused event, with the reason, goes to the error stream ${info.name}. This server does not serve that stream, because its events quote what producers sent: set streams.expose_error_stream: true to see them here (on a server that is not public), or read them where the server runs with `,
          h('code', {}, `eventplane log tail ${topic ?? '<its topic>'}`),
          '.',
        ),
      ),
      stop: () => {},
    }
  }
  const tbody = h('tbody')
  const status = h('p', { class: 'hint', id: 'errors-status' }, `The last ${maxErrorRows} events of ${info.name}, then new ones as they come. Click one to see the event as it was sent.`)
  const url = `/v2/stream/${encodeURIComponent(info.name)}?last=${maxErrorRows}`
  const source = new EventSource(url)
  source.addEventListener('message', (message) => {
    let event
    try {
      event = JSON.parse(message.data)
    } catch {
      return
    }
    tbody.prepend(errorRow(event))
    while (tbody.querySelectorAll('tr.error-event').length > maxErrorRows) {
      const last = tbody.lastElementChild
      last.remove()
      if (last.classList.contains('detail')) tbody.lastElementChild?.remove()
    }
  })
  source.addEventListener('error', async (event) => {
    const fromServer = serverError(event)
    if (fromServer !== null) status.textContent = fromServer
    else if (source.readyState === EventSource.CLOSED) status.textContent = await refusal(url)
  })
  return {
    section: section(
      status,
      h('table', { class: 'errors' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Stream'), h('th', { scope: 'col' }, 'Error'), h('th', { scope: 'col' }, 'Reason'))), tbody),
    ),
    stop: () => source.close(),
  }
}

/** An error event as a row; a click (or Enter) shows the refused event as it was sent. */
function errorRow(event) {
  const tr = h(
    'tr',
    { class: 'error-event', tabindex: 0, 'data-stream': event.errored_stream_name ?? '' },
    h('td', { class: 'time' }, shortTime(event.meta?.dt ?? event.dt)),
    h('td', { class: 'path' }, event.errored_stream_name ?? ''),
    h('td', {}, event.error_type ?? ''),
    h('td', { class: 'reason' }, event.message ?? ''),
  )
  return expandable(tr, () => h('pre', {}, typeof event.raw_event === 'string' ? prettyJson(event.raw_event) : ''))
}

window.addEventListener('hashchange', () => {
  render().then(() => view.focus())
})
render()
