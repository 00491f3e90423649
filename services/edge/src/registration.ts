// XEP-0077 §3.1: in-band registration before authentication, creating SCRAM credentials (never a password).
import type { AccountStore } from '@starling/ports';
import {
  attr,
  deriveAllScramKeys,
  errorReply,
  Jid,
  JidError,
  NS_REGISTER,
  StanzaError,
  xml,
  type Element,
} from '@starling/xmpp';

export interface RegistrationOptions {
  readonly accounts: AccountStore;
  readonly domain: string;
  readonly iterations: number;
  readonly open: boolean;
}

/** Whether `el` is an IQ carrying a jabber:iq:register query. */
export function isRegistrationIq(el: Element): boolean {
  return el.name === 'iq' && el.getChild('query', NS_REGISTER) !== undefined;
}

function result(iq: Element, ...children: Element[]): Element {
  return xml('iq', { type: 'result', id: attr(iq, 'id') }, ...children);
}

/** Answers a pre-authentication registration IQ; never rejects (failures become stanza errors). */
export async function answerRegistration(iq: Element, options: RegistrationOptions): Promise<Element> {
  try {
    return await register(iq, options);
  } catch (err) {
    return errorReply(iq, err instanceof StanzaError ? err : new StanzaError('internal-server-error'));
  }
}

async function register(iq: Element, options: RegistrationOptions): Promise<Element> {
  const type = attr(iq, 'type');
  if (attr(iq, 'id') === undefined) throw new StanzaError('bad-request');
  if (!options.open) throw new StanzaError('service-unavailable');
  const query = iq.getChild('query', NS_REGISTER);
  if (query === undefined) throw new StanzaError('bad-request');
  if (type === 'get') {
    return result(
      iq,
      xml(
        'query',
        { xmlns: NS_REGISTER },
        xml('instructions', null, 'Choose a username and password to register with this server.'),
        xml('username'),
        xml('password'),
      ),
    );
  }
  if (type !== 'set') throw new StanzaError('bad-request');
  // Removing an account needs an authenticated stream.
  if (query.getChild('remove') !== undefined) throw new StanzaError('not-allowed');
  const name = query.getChildText('username');
  const password = query.getChildText('password');
  if (name === null || password === null || name === '' || password === '') {
    throw new StanzaError('not-acceptable', 'A username and a password are required');
  }
  let username: string;
  try {
    username = Jid.of(name, options.domain).local;
  } catch (err) {
    if (err instanceof JidError) throw new StanzaError('jid-malformed', 'This username is not allowed');
    throw err;
  }
  const scram = await deriveAllScramKeys(password, options.iterations);
  const created = await options.accounts.create({ username, scram, createdAt: Date.now() });
  if (!created) throw new StanzaError('conflict', 'This username is taken');
  return result(iq);
}
