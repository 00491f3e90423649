// XEP-0202: Entity Time. Answers with the server's UTC time and its offset from UTC.
import { defineFeature } from '@starling/core';
import { NS_TIME, xml } from '@starling/xmpp';

/** XEP-0082 time zone offset, e.g. "+02:00" or "-05:30". */
export function timezoneOffset(date: Date): string {
  const minutes = -date.getTimezoneOffset();
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${minutes < 0 ? '-' : '+'}${hh}:${mm}`;
}

export default defineFeature({
  id: 'xep-0202-time',
  spec: { xep: 202, title: 'Entity Time' },
  roles: ['router'],
  disco: { features: [NS_TIME] },
  setup(ctx) {
    ctx.iq.onGet(NS_TIME, 'time', () => {
      const now = new Date();
      return xml(
        'time',
        { xmlns: NS_TIME },
        xml('tzo', null, timezoneOffset(now)),
        // XEP-0082 DateTime in UTC; whole seconds are all the XEP's examples show.
        xml('utc', null, now.toISOString().replace(/\.\d+Z$/, 'Z')),
      );
    });
  },
});
