// XEP-0077: In-Band Registration after authentication: password change (§3.3) and account removal (§3.2).
import { defineFeature, type FeatureContext, type IqRequest } from '@starling/core';
import { deriveAllScramKeys, Jid, NS_REGISTER, StanzaError, xml } from '@starling/xmpp';

/** Sent to the server, or with no address (then handled for the own account): never for another user. */
function ownAccountOnly({ from, to, target }: IqRequest): void {
  if (target === 'account' && !to.equals(from.bare())) throw new StanzaError('forbidden');
}

async function removeAccount(
  ctx: FeatureContext,
  username: string,
  requester: string,
  id: string | undefined,
): Promise<void> {
  if (!(await ctx.store.accounts.delete(username))) throw new StanzaError('item-not-found');
  await ctx.hooks.run('account-removed', { username });
  const sessions = await ctx.registry.resources(`${username}@${ctx.config.domain}`);
  // §3.2: the result goes out before the streams close, so the requester learns that it worked. The
  // host's own result that follows finds the session gone and is dropped.
  const own = sessions.find((session) => session.jid === requester);
  if (own) await ctx.routing.deliver(own, xml('iq', { type: 'result', id, to: requester }));
  for (const session of sessions) await ctx.routing.close(session, 'not-authorized');
}

export default defineFeature({
  id: 'xep-0077-register',
  spec: { xep: 77, title: 'In-Band Registration' },
  roles: ['router'],
  enabled: (config) => config.registration === 'open',
  disco: { features: [NS_REGISTER] },
  setup(ctx) {
    ctx.iq.onGet(
      NS_REGISTER,
      'query',
      (request) => {
        ownAccountOnly(request);
        // §3.2: an account that is already registered sees its username and the fields it may change.
        return xml(
          'query',
          { xmlns: NS_REGISTER },
          xml('registered'),
          xml('username', null, request.from.local),
          xml('password'),
        );
      },
      { targets: ['server', 'account'] },
    );
    ctx.iq.onSet(
      NS_REGISTER,
      'query',
      async (request) => {
        ownAccountOnly(request);
        const { from, payload, stanza } = request;
        if (payload.getChild('remove') !== undefined) {
          await removeAccount(ctx, from.local, from.toString(), stanza.attrs.id as string | undefined);
          return undefined;
        }
        const username = payload.getChildText('username');
        const password = payload.getChildText('password');
        if (username === null || password === null || password === '') {
          throw new StanzaError('bad-request', 'username and password are required');
        }
        if (Jid.tryParse(`${username}@${from.domain}`)?.local !== from.local) {
          throw new StanzaError('not-allowed', 'only the password of the own account can change');
        }
        const scram = await deriveAllScramKeys(password, ctx.config.auth.scramIterations);
        if (!(await ctx.store.accounts.setCredentials(from.local, scram))) {
          throw new StanzaError('item-not-found');
        }
        return undefined;
      },
      { targets: ['server', 'account'] },
    );
  },
});
