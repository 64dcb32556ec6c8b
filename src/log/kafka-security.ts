import { readFileSync } from 'node:fs'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import type { KafkaLogOptions } from './kafka.ts'

/** SASL (password from the environment) and TLS (PEM files) settings of the Kafka clients. */
export function kafkaSecurity(kafka: Readonly<Config>['event_log']['kafka']): { sasl?: KafkaLogOptions['sasl']; tls?: KafkaLogOptions['tls'] } {
  const security: { sasl?: KafkaLogOptions['sasl']; tls?: KafkaLogOptions['tls'] } = {}
  if (kafka.sasl !== undefined) {
    const name = kafka.sasl.password_env
    const password = process.env[name]
    if (password === undefined || password === '') {
      throw new EventplaneError('EVP_CONFIG_INVALID', `event_log.kafka.sasl: the password is read from the environment variable ${name}, which is not set`, {
        details: { key: 'event_log.kafka.sasl.password_env' },
      })
    }
    security.sasl = { mechanism: kafka.sasl.mechanism, username: kafka.sasl.username, password }
  }
  if (kafka.tls !== undefined) {
    const read = (key: 'ca_file' | 'cert_file' | 'key_file') => {
      const file = kafka.tls![key]
      if (file === undefined) return undefined
      try {
        return readFileSync(file)
      } catch (error) {
        throw new EventplaneError('EVP_CONFIG_INVALID', `event_log.kafka.tls.${key}: cannot read ${file}: ${(error as Error).message}`, { details: { key: `event_log.kafka.tls.${key}` } })
      }
    }
    const [ca, cert, key] = [read('ca_file'), read('cert_file'), read('key_file')]
    security.tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(kafka.tls.server_name ? { servername: kafka.tls.server_name } : {}) }
  }
  return security
}
