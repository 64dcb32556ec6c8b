export { createAuth, minTokenLength, type Auth, type AuthSettings, type Principal, type PrincipalSettings, type StreamSet } from './auth.ts'
