// RFC 4616: the server side of SASL PLAIN, checked against the stored SCRAM keys (never a stored password).
import type { ScramCredentials } from '@starling/ports';
import { deriveScramKeys, Jid, verifyPassword } from '@starling/xmpp';
import type { SaslExchange, SaslServerOptions, SaslStep } from './mechanism.ts';
import { decodeUtf8 } from './payload.ts';
import { authzidMatches, prepareUsername } from './username.ts';

/** RFC 4616 §2: each field is at most 255 octets. */
const MAX_FIELD_BYTES = 255;

interface PlainMessage {
  readonly authzid: string;
  readonly authcid: string;
  readonly password: string;
}

/** Splits `[authzid] NUL authcid NUL passwd`; undefined when it does not have that shape. */
export function parsePlainMessage(data: Buffer): PlainMessage | undefined {
  const text = decodeUtf8(data);
  if (text === undefined) return undefined;
  const parts = text.split('\0');
  if (parts.length !== 3) return undefined;
  const [authzid = '', authcid = '', password = ''] = parts;
  if (authcid === '' || password === '') return undefined;
  for (const part of parts) if (Buffer.byteLength(part, 'utf8') > MAX_FIELD_BYTES) return undefined;
  return { authzid, authcid, password };
}

/** A PLAIN exchange. The host offers it only over TLS. */
export class PlainServerExchange implements SaslExchange {
  readonly mechanism = 'PLAIN';
  private readonly options: SaslServerOptions;
  private done = false;
  private challenged = false;

  constructor(options: SaslServerOptions) {
    this.options = options;
  }

  async step(data: Buffer | undefined): Promise<SaslStep> {
    if (this.done) return { kind: 'failure', condition: 'malformed-request', text: 'The exchange is over' };
    if (data === undefined) {
      if (this.challenged) {
        this.done = true;
        return { kind: 'failure', condition: 'malformed-request' };
      }
      this.challenged = true;
      return { kind: 'challenge', data: Buffer.alloc(0) };
    }
    this.done = true;
    const message = parsePlainMessage(data);
    if (message === undefined) return { kind: 'failure', condition: 'malformed-request' };
    const username = this.username(message.authcid);
    let credentials: ScramCredentials | undefined;
    if (username !== undefined) {
      try {
        credentials = (await this.options.accounts.get(username))?.scram['SHA-256'];
      } catch {
        return { kind: 'failure', condition: 'temporary-auth-failure' };
      }
    }
    if (username === undefined || credentials === undefined) {
      // Unknown users cost one key derivation too, so timing does not tell them apart.
      await deriveScramKeys('SHA-256', message.password, this.options.iterations, this.options.fakeSaltKey);
      return { kind: 'failure', condition: 'not-authorized' };
    }
    if (!(await verifyPassword('SHA-256', message.password, credentials))) {
      return { kind: 'failure', condition: 'not-authorized' };
    }
    if (!authzidMatches(message.authzid, username, this.options.domain)) {
      return { kind: 'failure', condition: 'invalid-authzid' };
    }
    return { kind: 'success', username };
  }

  /** COMPAT(older clients): some send `user@domain` as the authcid; accepted for the served domain. */
  private username(authcid: string): string | undefined {
    if (!authcid.includes('@')) return prepareUsername(authcid, this.options.domain);
    const jid = Jid.tryParse(authcid);
    if (jid?.isBare !== true || jid.local === '') return undefined;
    return authzidMatches(authcid, jid.local, this.options.domain) ? jid.local : undefined;
  }
}
