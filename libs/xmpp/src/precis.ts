// RFC 7622 §3.2-3.4 with RFC 8264/8265 PRECIS profiles. Placeholder preparation; replaced by the full profiles.
import { JidError } from './jid.ts';

export function prepareLocalpart(local: string): string {
  const out = local.normalize('NFC').toLowerCase();
  if (/["&'/:<>@\s]/u.test(out)) throw new JidError('invalid localpart');
  return out;
}

export function prepareDomainpart(domain: string): string {
  const out = domain.toLowerCase().replace(/\.$/, '');
  if (out === '' || /[\s@/]/u.test(out)) throw new JidError('invalid domainpart');
  return out;
}

export function prepareResourcepart(resource: string): string {
  return resource.normalize('NFC');
}
