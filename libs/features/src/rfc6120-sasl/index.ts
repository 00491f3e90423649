// RFC 6120 §6: the server-side SASL mechanisms the edge offers, and the codec of their XML payloads.
import {
  SASL_MECHANISMS,
  type SaslExchange,
  type SaslMechanismName,
  type SaslServerOptions,
} from './mechanism.ts';
import { PlainServerExchange } from './plain-server.ts';
import { ScramServerExchange } from './scram-server.ts';

export * from './mechanism.ts';
export { decodeSaslPayload, encodeSaslPayload } from './payload.ts';
export { PlainServerExchange, parsePlainMessage } from './plain-server.ts';
export { ScramServerExchange } from './scram-server.ts';

/** Starts an exchange for `mechanism`. Which mechanisms a stream may use is the host's decision. */
export function createSaslExchange(mechanism: SaslMechanismName, options: SaslServerOptions): SaslExchange {
  switch (mechanism) {
    case 'SCRAM-SHA-256':
      return new ScramServerExchange('SHA-256', options);
    case 'SCRAM-SHA-1':
      return new ScramServerExchange('SHA-1', options);
    case 'PLAIN':
      return new PlainServerExchange(options);
  }
}

const SASL_NAMES: ReadonlySet<string> = new Set(SASL_MECHANISMS);

/** Whether `name` is a mechanism Starling implements. */
export function isSaslMechanism(name: string): name is SaslMechanismName {
  return SASL_NAMES.has(name);
}
