// RFC 6121 §3 and §8.5.1: who may learn about an account's presence (and so its disco and last activity).
import type { Store } from '@starling/ports';
import type { Jid } from '@starling/xmpp';

/** The owner themself, or a contact the owner's roster grants a subscription (from or both). */
export async function mayViewPresence(store: Store, owner: Jid, requester: Jid): Promise<boolean> {
  const bare = requester.bare();
  if (bare.equals(owner.bare())) return true;
  const item = await store.rosters.getItem(owner.local, bare.toString());
  return item?.subscription === 'from' || item?.subscription === 'both';
}
