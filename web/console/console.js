// The Eventplane console, served at / to browsers: plain browser JavaScript, no build step,
// nothing from other hosts. Every view reads the server's JSON APIs. Text from schemas, stream
// configs and events is only ever set as text (textContent), never parsed as HTML.

const view = document.getElementById('view')

/** An element with attributes and children (strings become text nodes). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    element.setAttribute(name, value === true ? '' : String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    element.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return element
}

const svgNs = 'http://www.w3.org/2000/svg'

/** An SVG element (text, if any, is set as text). */
function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(svgNs, tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value))
  if (text !== undefined) element.textContent = text
  return element
}

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

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: 'application/json' } })
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}))
    throw new Error(`${url}: ${response.status} ${problem.detail ?? response.statusText}`)
  }
  return response.json()
}

const routes = [
  [/^#?\/?$/, home],
  [/^#\/schemas\/?(?:\?title=(.*))?$/, schemas],
  [/^#\/schemas\/([^/]+)\/(.+?)(?:@([^@/]+))?$/, schema],
  [/^#\/streams\/?$/, streams],
  [/^#\/intake\/?$/, intake],
]

/** Work a view started that must stop when another view is shown (polling). */
let stopView = () => {}

async function render() {
  const hash = decodeURIComponent(location.hash)
  const section = hash.split('/')[1] ?? ''
  for (const link of document.querySelectorAll('nav a[data-section]')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  const started = performance.now()
  stopView()
  stopView = () => {}
  for (const [pattern, show] of routes) {
    const match = pattern.exec(hash)
    if (match === null) continue
    try {
      const content = await show(...match.slice(1))
      view.replaceChildren(...content.flat().filter((node) => node !== null && node !== undefined && node !== false))
    } catch (error) {
      view.replaceChildren(h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, error.message))
    }
    view.dataset.renderMs = String(Math.round(performance.now() - started))
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
      card('Live tail', '▶', 'follow streams as events arrive, with a filter', '/v2/ui'),
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
          h('li', { 'data-title': t.title }, h('a', { href: `#/schemas/${name}/${t.title}` }, t.title), ' ', h('span', { class: 'muted' }, t.latest ? `${t.latest} · ${t.versions.length} version${t.versions.length === 1 ? '' : 's'}` : 'not materialized')),
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

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
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

async function streams() {
  const [configs, recent] = await Promise.all([getJson('/v1/stream-configs'), getJson('/v1/intake/recent').catch(() => null)])
  const activity = recent === null ? new Map() : byStream(recent)
  const rate = (name) => {
    const entry = activity.get(name)
    if (entry === undefined || recent === null) return h('span', { class: 'muted' }, '–')
    const seconds = recent.buckets.length * recent.interval_s
    return h('span', { class: 'rate' }, bars(entry.series, { width: 120, height: 22, label: `${name}: ${entry.totals.accepted} accepted in ${seconds / 60} min` }), ` ${(entry.totals.accepted / seconds).toFixed(2)}/s`)
  }
  const entries = Object.entries(configs).sort(([a], [b]) => (a < b ? -1 : 1))
  return [
    h('h1', {}, 'Streams'),
    h('p', { class: 'hint' }, 'Every stream of the stream config. ', h('a', { href: '/v2/ui' }, 'Follow them live'), '.'),
    h(
      'table',
      { class: 'streams' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Stream'), h('th', { scope: 'col' }, 'Schema'), h('th', { scope: 'col' }, 'Topics'), h('th', { scope: 'col' }, 'Accepted, last 5 min'), h('th', { scope: 'col' }, 'Description'))),
      h(
        'tbody',
        {},
        entries.map(([name, settings]) =>
          h(
            'tr',
            { 'data-stream': name },
            h('td', { class: 'path' }, name.startsWith('/') ? name : h('a', { href: `/v2/ui#streams=${encodeURIComponent(name)}` }, name)),
            h('td', {}, settings.schema_title ? h('a', { href: `#/schemas?title=${encodeURIComponent(settings.schema_title)}` }, settings.schema_title) : ''),
            h('td', { class: 'tags' }, (Array.isArray(settings.topics) ? settings.topics : []).map((t) => h('span', {}, t))),
            h('td', { class: 'activity' }, rate(name)),
            h('td', {}, settings.description ?? ''),
          ),
        ),
      ),
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
  await refresh()
  const timer = setInterval(() => refresh().catch(() => {}), 5000)
  stopView = () => clearInterval(timer)
  return [
    h('h1', {}, 'Intake'),
    summary,
    h('table', { class: 'intake' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Stream'), h('th', { scope: 'col' }, 'Accepted'), h('th', { scope: 'col' }, 'Invalid'), h('th', { scope: 'col' }, 'Error'), h('th', { scope: 'col' }, 'Last 5 minutes'))), table),
    h('p', { class: 'hint' }, 'Each invalid event gets an error event in the error stream (eventplane.error.validation by default), with the reason; follow it in the live tail when the server serves it (streams.expose_error_stream).'),
  ]
}

window.addEventListener('hashchange', () => {
  render().then(() => view.focus())
})
render()
