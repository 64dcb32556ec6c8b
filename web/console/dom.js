// Small helpers shared by the console's views. Text is only ever set as text (text nodes,
// textContent), never parsed as HTML.

/** An element with attributes and children (strings become text nodes). */
export function h(tag, attributes = {}, ...children) {
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
export function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(svgNs, tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value))
  if (text !== undefined) element.textContent = text
  return element
}

/**
 * Makes a table row open and close a row below it (class `detail`) on a click or Enter; the
 * detail is made when first needed. Returns the row.
 */
export function expandable(tr, detail) {
  const toggle = () => {
    const next = tr.nextElementSibling
    if (next?.classList.contains('detail')) return next.remove()
    tr.after(h('tr', { class: 'detail' }, h('td', { colspan: tr.childElementCount }, detail())))
  }
  tr.addEventListener('click', toggle)
  tr.addEventListener('keydown', (key) => key.key === 'Enter' && toggle())
  return tr
}

/** GET a JSON API; a refusal becomes an error carrying the problem's detail. */
export async function getJson(url) {
  const response = await fetch(url, { headers: { accept: 'application/json' } })
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}))
    throw new Error(`${url}: ${response.status} ${problem.detail ?? response.statusText}`)
  }
  return response.json()
}

/** JSON text indented, or the text as it came when it is not JSON. */
export function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}

/** A time as `YYYY-MM-DD hh:mm:ss.sss` (UTC), or '' when it is not one. */
export function shortTime(dt) {
  return typeof dt === 'string' ? dt.replace('T', ' ').replace(/Z$/, '') : ''
}

/**
 * The problem behind an EventSource that failed to open: asks the same address again for its
 * problem document. Resolves to a line to show.
 */
export async function refusal(url) {
  try {
    const controller = new AbortController()
    const response = await fetch(url, { headers: { accept: 'application/json' }, signal: controller.signal })
    if (response.ok) {
      controller.abort()
      return 'The stream closed; connect again.'
    }
    const problem = await response.json().catch(() => ({}))
    return `${response.status} ${problem.code ?? ''}: ${problem.detail ?? response.statusText}`
  } catch (error) {
    return `The server cannot be reached: ${error.message}`
  }
}

/** `event: error` data sent by the server before it ends a stream, as a line to show; null when there is none. */
export function serverError(event) {
  if (typeof event.data !== 'string' || event.data === '') return null
  try {
    const problem = JSON.parse(event.data)
    return `${problem.code ?? problem.type ?? 'error'}: ${problem.detail ?? problem.message ?? event.data}`
  } catch {
    return event.data
  }
}
