/**
 * @module intake: `POST /v1/events` (EventGate): validate each event against the schema version it
 * names, check its stream, enrich it, and append it durably to the event log; and the legacy
 * EventLogging beacon, `GET /beacon/event`.
 */
export { createIntake, type Intake, type IntakeOptions, type BatchResult, type ItemResult, type ItemStatus, type RequestContext } from './intake.ts'
export { intakeRoutes, answerFor, requestContext, type Answer, type IntakeRoutesOptions } from './routes.ts'
export { beaconRoutes, capsuleEvent, type BeaconOutcome, type BeaconSettings } from './beacon.ts'
export { createAdmission, type Admission, type AdmissionOptions } from './admission.ts'
export { createIntakeListener, proxyTrust, type IntakeListenerOptions } from './listener.ts'
export { parseEventsBody, fromCloudEvent, eventContentTypes, eventMediaType, type EventContentType, type BodyLimits, type ParsedBody } from './body.ts'
