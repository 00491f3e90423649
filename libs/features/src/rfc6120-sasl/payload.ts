// RFC 6120 §6.4.2 and §13.9.1: SASL data travels as strict base64 (RFC 4648 §4), "=" meaning empty.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes the text of `<auth/>` or `<response/>`: undefined for no data at all, an empty buffer for "=",
 * null for anything that is not strict base64 (answered with `incorrect-encoding`).
 */
export function decodeSaslPayload(text: string): Buffer | undefined | null {
  // Pretty-printing clients may surround the value with whitespace; inside it none is allowed.
  const value = text.trim();
  if (value === '') return undefined;
  if (value === '=') return Buffer.alloc(0);
  if (!BASE64.test(value)) return null;
  return Buffer.from(value, 'base64');
}

/** Encodes challenge or success data; empty data is sent as "=". */
export function encodeSaslPayload(data: Buffer): string {
  return data.length === 0 ? '=' : data.toString('base64');
}

/** Decodes base64 inside a mechanism's own messages; undefined if malformed. */
export function decodeBase64Strict(value: string): Buffer | undefined {
  return value !== '' && BASE64.test(value) ? Buffer.from(value, 'base64') : undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes UTF-8 strictly; undefined for invalid sequences. */
export function decodeUtf8(data: Buffer): string | undefined {
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}
