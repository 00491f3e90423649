// RFC 6120 §6.4.2: the base64 payload codec of SASL elements.
import { describe, expect, it } from 'vitest';
import { decodeSaslPayload, encodeSaslPayload } from './payload.ts';

describe('SASL payloads', () => {
  it('tells "no data" from "empty data"', () => {
    expect(decodeSaslPayload('')).toBeUndefined();
    expect(decodeSaslPayload('=')).toEqual(Buffer.alloc(0));
    expect(encodeSaslPayload(Buffer.alloc(0))).toBe('=');
  });

  it('round-trips binary data and tolerates surrounding whitespace', () => {
    const data = Buffer.from([0, 1, 2, 250, 255]);
    expect(decodeSaslPayload(`\n  ${encodeSaslPayload(data)}\n`)).toEqual(data);
  });

  it.each(['abc', 'ab$=', 'YW Jj', 'YWJj=', '====', 'YQ=', 'YQ==YQ=='])('rejects %j', (text) => {
    expect(decodeSaslPayload(text)).toBeNull();
  });
});
