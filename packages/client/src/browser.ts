/**
 * The browser defaults: a context provider that knows the agent, the page and (on MediaWiki
 * pages, from `mw.config`) the wiki and the user, and `createMetricsClient`, a MetricsClient
 * sending through a BrowserTransport.
 *
 *   <script src="eventplane.min.js"></script>
 *   <script>
 *     const client = eventplane.createMetricsClient({ origin: 'https://events.example.org' })
 *     client.submitClick('product_metrics.web_base', { element_id: 'save' })
 *   </script>
 */
import { MetricsClient, type MetricsClientOptions } from './client.ts'
import type { ContextProvider } from './context.ts'
import { BrowserTransport, type BrowserTransportOptions } from './transport.ts'

interface MwConfig {
  get(name: string): unknown
}

/** MediaWiki config variables behind the attributes Wikimedia's JS integration fills (reference §2.4). */
const fromMwConfig: Record<string, string> = {
  page_id: 'wgArticleId',
  page_title: 'wgTitle',
  page_namespace_id: 'wgNamespaceNumber',
  page_namespace_name: 'wgCanonicalNamespace',
  page_revision_id: 'wgRevisionId',
  page_wikidata_qid: 'wgWikibaseItemId',
  page_content_language: 'wgPageContentLanguage',
  page_is_redirect: 'wgIsRedirect',
  page_user_groups_allowed_to_edit: 'wgRestrictionEdit',
  page_user_groups_allowed_to_move: 'wgRestrictionMove',
  mediawiki_database: 'wgDBname',
  mediawiki_skin: 'skin',
  mediawiki_version: 'wgVersion',
  mediawiki_site_content_language: 'wgContentLanguage',
  performer_id: 'wgUserId',
  performer_name: 'wgUserName',
  performer_groups: 'wgUserGroups',
  performer_language: 'wgUserLanguage',
  performer_language_variant: 'wgUserVariant',
  performer_can_probably_edit_page: 'wgIsProbablyEditable',
  performer_edit_count: 'wgUserEditCount',
  performer_edit_count_bucket: 'wgUserEditCountBucket',
  performer_is_temp: 'wgUserIsTemp',
}

/** The default context of a browser page (values the page cannot know are left out). */
export function defaultContext(): ContextProvider {
  const g = globalThis as { mw?: { config?: MwConfig }; navigator?: { userAgent?: string }; document?: { title?: string } }
  return (name) => {
    const mw = g.mw?.config
    switch (name) {
      case 'agent_client_platform':
        // The one value Wikimedia's web/base schema takes for JavaScript in a browser (its
        // enum has no other); a context provider of your own can send another.
        return 'mediawiki_js'
      case 'agent_client_platform_family':
        // MediaWiki says whether it serves the mobile site (MobileFrontend's wgMFMode); other
        // pages are told by the user agent.
        if (mw !== undefined) return mw.get('wgMFMode') !== null && mw.get('wgMFMode') !== undefined ? 'mobile_browser' : 'desktop_browser'
        return /Mobi|Android|iPhone|iPad/.test(g.navigator?.userAgent ?? '') ? 'mobile_browser' : 'desktop_browser'
      case 'agent_ua_string':
        return g.navigator?.userAgent
      case 'mediawiki_is_production': {
        const version = mw?.get('wgVersion')
        return typeof version === 'string' ? version.includes('wmf') : undefined
      }
      case 'mediawiki_is_debug_mode':
        return mw === undefined ? undefined : Boolean(mw.get('debug'))
      case 'performer_is_logged_in': {
        if (mw === undefined) return undefined
        return mw.get('wgUserName') !== null && mw.get('wgUserName') !== undefined
      }
      case 'performer_is_bot': {
        const groups = mw?.get('wgUserGroups')
        return Array.isArray(groups) ? groups.includes('bot') : undefined
      }
      case 'performer_registration_dt': {
        const registration = mw?.get('wgUserRegistration')
        return typeof registration === 'number' && registration > 0 ? new Date(registration).toISOString() : undefined
      }
      case 'page_title': {
        const title = mw?.get('wgTitle')
        return typeof title === 'string' ? title : g.document?.title || undefined
      }
      default: {
        const variable = fromMwConfig[name]
        return variable === undefined ? undefined : (mw?.get(variable) ?? undefined)
      }
    }
  }
}

export interface BrowserClientOptions extends Partial<Omit<MetricsClientOptions, 'sink'>> {
  /** Where the intake and the stream config API are (one Eventplane server). */
  origin: string
  /** The intake, when it is elsewhere than `origin`. */
  intakeUrl?: string
  transport?: Partial<BrowserTransportOptions>
}

/** A MetricsClient for a browser page: stream configs from `origin`, events through a BrowserTransport. */
export function createMetricsClient(options: BrowserClientOptions): MetricsClient & { transport: BrowserTransport } {
  const { origin, intakeUrl, transport: transportOptions, ...rest } = options
  const transport = new BrowserTransport({ url: intakeUrl ?? origin, logger: rest.logger, ...transportOptions })
  const client = new MetricsClient({
    streamConfigsOrigin: rest.streamConfigs === undefined ? origin : undefined,
    context: defaultContext(),
    ...rest,
    sink: transport,
  }) as MetricsClient & { transport: BrowserTransport }
  client.transport = transport
  return client
}
