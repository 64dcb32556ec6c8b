/**
 * How long a loop over events or records works before it lets the event loop run (ms): other
 * requests, /healthz, heartbeats and the other clients' reads wait at most about this long for
 * any one of them.
 */
export const sliceMs = 10
