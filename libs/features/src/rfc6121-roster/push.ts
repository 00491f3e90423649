// RFC 6121 §2.1.6: roster pushes to every interested resource of a user, and the roster item element.
import { randomUUID } from 'node:crypto';
import type { FeatureContext } from '@starling/core';
import type { RosterItem } from '@starling/ports';
import { NS_ROSTER, xml, type Element } from '@starling/xmpp';

/** The `<item/>` of a roster result or push (RFC 6121 §2.1.2); pending-out shows as ask="subscribe". */
export function rosterItemElement(item: RosterItem): Element {
  return xml(
    'item',
    {
      jid: item.jid,
      name: item.name,
      subscription: item.subscription,
      ask: item.askOut ? 'subscribe' : undefined,
      approved: item.approved ? 'true' : undefined,
    },
    ...item.groups.map((group) => xml('group', null, group)),
  );
}

/**
 * Sends a roster push with `item` (or its removal) and the new roster `version` to every interested
 * resource of `username` (RFC 6121 §2.1.6). Resources that left meanwhile are skipped.
 */
export async function pushRosterItem(
  ctx: FeatureContext,
  username: string,
  item: RosterItem | { jid: string; subscription: 'remove' },
  version: number,
): Promise<void> {
  const sessions = await ctx.registry.resources(`${username}@${ctx.config.domain}`);
  const itemElement = (): Element =>
    item.subscription === 'remove'
      ? xml('item', { jid: item.jid, subscription: 'remove' })
      : rosterItemElement(item);
  await Promise.all(
    sessions
      .filter((session) => session.interested)
      .map((session) =>
        ctx.routing.deliver(
          session,
          xml(
            'iq',
            { type: 'set', id: randomUUID(), to: session.jid },
            xml('query', { xmlns: NS_ROSTER, ver: String(version) }, itemElement()),
          ),
        ),
      ),
  );
}
