/**
 * @module streams: EventStreams. `GET /v2/stream/{streams}` as Server-Sent Events from the event
 * log, with resume (`Last-Event-ID`), replay (`since`), server-side filters, and one shared
 * reader per partition for every live client.
 */
export { streamRoutes, type StreamServiceOptions } from './service.ts'
export { regexStream, regexStreamsIn, servedStreams, topicsLookup, type ServedStream } from './exposure.ts'
export { compileFilter, type EventFilter, type FilterRequest, type FilterLimits, type FilterVerdict } from './filter.ts'
export { parseLastEventId, parseSince, type IdPosition } from './positions.ts'
export { Hub, Tail, toDelivery, type Delivery } from './hub.ts'
export { StreamClient, type IdMode, type Format, type Assignment, type Start } from './client.ts'
export { streamsOpenApi, latestSchemaUri, type StreamsOpenApi } from './openapi.ts'
export { followStream, parseSse, type FollowOptions, type FollowStatus, type SseEvent } from './follow.ts'
