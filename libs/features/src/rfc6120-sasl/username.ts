// RFC 6120 §6.3.7 and RFC 7622 §3.3: SASL simple user names are JID localparts and are prepared as such.
import { Jid, JidError } from '@starling/xmpp';

/** The prepared localpart for `name`, or undefined if no account could have it. */
export function prepareUsername(name: string, domain: string): string | undefined {
  if (name === '') return undefined;
  try {
    const jid = Jid.of(name, domain);
    return jid.local === '' ? undefined : jid.local;
  } catch (err) {
    if (err instanceof JidError) return undefined;
    throw err;
  }
}

/** Whether an authorization identity names the authenticated user (empty counts as "the same"). */
export function authzidMatches(authzid: string, username: string, domain: string): boolean {
  if (authzid === '') return true;
  const jid = Jid.tryParse(authzid);
  return (
    jid !== undefined && jid.isBare && jid.local === username && jid.domain === Jid.of('', domain).domain
  );
}
