// RFC 5802 and RFC 7677: the server side of SCRAM-SHA-1 and SCRAM-SHA-256, without channel binding.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ScramCredentials } from '@starling/ports';
import { digest, hmac, xorBuffers, type ScramHashName } from '@starling/xmpp';
import type { SaslExchange, SaslServerOptions, SaslStep } from './mechanism.ts';
import { decodeBase64Strict, decodeUtf8 } from './payload.ts';
import { authzidMatches, prepareUsername } from './username.ts';

const FAKE_SALT_BYTES = 16;

function failure(
  condition: 'malformed-request' | 'not-authorized' | 'invalid-authzid',
  text?: string,
): SaslStep {
  return text === undefined ? { kind: 'failure', condition } : { kind: 'failure', condition, text };
}

/** RFC 5802 §5.1 saslname: "=2C" and "=3D" are the only escapes; any other "=" is an error. */
function decodeSaslName(value: string): string | undefined {
  if (/=(?!2C|3D)/.test(value)) return undefined;
  return value.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** Printable ASCII without a comma (RFC 5802 §7 `printable`). */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

function randomNonce(): string {
  return randomBytes(18).toString('base64');
}

interface ClientFirst {
  readonly gs2Header: string;
  readonly authzid: string;
  readonly name: string;
  readonly clientNonce: string;
  readonly bare: string;
}

function parseClientFirst(message: string): ClientFirst | SaslStep {
  const first = message.indexOf(',');
  const second = first === -1 ? -1 : message.indexOf(',', first + 1);
  if (second === -1) return failure('malformed-request', 'Missing GS2 header');
  const flag = message.slice(0, first);
  const authzField = message.slice(first + 1, second);
  if (flag.startsWith('p=')) return failure('malformed-request', 'Channel binding is not supported');
  if (flag !== 'n' && flag !== 'y') return failure('malformed-request', 'Invalid GS2 header');
  let authzid = '';
  if (authzField !== '') {
    if (!authzField.startsWith('a=')) return failure('malformed-request', 'Invalid GS2 header');
    const decoded = decodeSaslName(authzField.slice(2));
    if (decoded === undefined || decoded === '') return failure('malformed-request', 'Invalid authzid');
    authzid = decoded;
  }
  const bare = message.slice(second + 1);
  const fields = bare.split(',');
  // RFC 5802 §5.1: a server that does not know the "m" extension must fail.
  if (fields[0]?.startsWith('m=')) return failure('malformed-request', 'Unsupported mandatory extension');
  const user = fields[0];
  const nonce = fields[1];
  if (user?.startsWith('n=') !== true || nonce?.startsWith('r=') !== true) {
    return failure('malformed-request', 'Expected username and nonce');
  }
  const name = decodeSaslName(user.slice(2));
  const clientNonce = nonce.slice(2);
  if (name === undefined || name === '') return failure('malformed-request', 'Invalid username');
  if (!NONCE.test(clientNonce)) return failure('malformed-request', 'Invalid nonce');
  return { gs2Header: message.slice(0, second + 1), authzid, name, clientNonce, bare };
}

interface ClientFinal {
  readonly channelBinding: Buffer;
  readonly nonce: string;
  readonly withoutProof: string;
  readonly proof: Buffer;
}

function parseClientFinal(message: string): ClientFinal | SaslStep {
  const proofAt = message.lastIndexOf(',p=');
  if (proofAt === -1) return failure('malformed-request', 'Missing proof');
  const withoutProof = message.slice(0, proofAt);
  const proof = decodeBase64Strict(message.slice(proofAt + 3));
  const [binding, nonce] = withoutProof.split(',');
  if (binding?.startsWith('c=') !== true || nonce?.startsWith('r=') !== true || proof === undefined) {
    return failure('malformed-request', 'Expected channel binding, nonce and proof');
  }
  const channelBinding = decodeBase64Strict(binding.slice(2));
  if (channelBinding === undefined) return failure('malformed-request', 'Invalid channel binding');
  return { channelBinding, nonce: nonce.slice(2), withoutProof, proof };
}

interface Pending {
  readonly first: ClientFirst;
  readonly serverFirst: string;
  readonly nonce: string;
  /** Undefined for unknown users: the exchange runs to the end and then fails. */
  readonly username: string | undefined;
  readonly credentials: ScramCredentials | undefined;
}

/** A SCRAM exchange for `hash` (RFC 5802 §5). Unknown users get a full exchange with a stable fake salt. */
export class ScramServerExchange implements SaslExchange {
  readonly mechanism: 'SCRAM-SHA-1' | 'SCRAM-SHA-256';
  private readonly hash: ScramHashName;
  private readonly options: SaslServerOptions;
  private pending: Pending | undefined;
  private done = false;

  constructor(hash: ScramHashName, options: SaslServerOptions) {
    this.hash = hash;
    this.mechanism = hash === 'SHA-1' ? 'SCRAM-SHA-1' : 'SCRAM-SHA-256';
    this.options = options;
  }

  async step(data: Buffer | undefined): Promise<SaslStep> {
    if (this.done) return failure('malformed-request', 'The exchange is over');
    // RFC 6120 §6.4.2: without an initial response the server sends an empty challenge.
    if (data === undefined && this.pending === undefined) return { kind: 'challenge', data: Buffer.alloc(0) };
    const text = data === undefined ? undefined : decodeUtf8(data);
    if (text === undefined) {
      this.done = true;
      return failure('malformed-request', 'Expected a UTF-8 SCRAM message');
    }
    if (this.pending === undefined) return this.onClientFirst(text);
    this.done = true;
    return this.onClientFinal(text, this.pending);
  }

  private async onClientFirst(message: string): Promise<SaslStep> {
    const first = parseClientFirst(message);
    if ('kind' in first) {
      this.done = true;
      return first;
    }
    const username = prepareUsername(first.name, this.options.domain);
    let credentials: ScramCredentials | undefined;
    if (username !== undefined) {
      try {
        credentials = (await this.options.accounts.get(username))?.scram[this.hash];
      } catch {
        this.done = true;
        return { kind: 'failure', condition: 'temporary-auth-failure' };
      }
    }
    const nonce = first.clientNonce + (this.options.nonce ?? randomNonce)();
    const salt = credentials?.salt ?? this.fakeSalt(username ?? first.name);
    const iterations = credentials?.iterations ?? this.options.iterations;
    const serverFirst = `r=${nonce},s=${salt},i=${iterations}`;
    this.pending = { first, serverFirst, nonce, username, credentials };
    return { kind: 'challenge', data: Buffer.from(serverFirst, 'utf8') };
  }

  private onClientFinal(message: string, pending: Pending): SaslStep {
    const final = parseClientFinal(message);
    if ('kind' in final) return final;
    if (final.nonce !== pending.nonce) return failure('not-authorized', 'Nonce mismatch');
    if (!final.channelBinding.equals(Buffer.from(pending.first.gs2Header, 'utf8'))) {
      return failure('not-authorized', 'Channel binding mismatch');
    }
    const { credentials, username } = pending;
    if (credentials === undefined || username === undefined) return failure('not-authorized');
    const authMessage = `${pending.first.bare},${pending.serverFirst},${final.withoutProof}`;
    const storedKey = Buffer.from(credentials.storedKey, 'base64');
    const clientSignature = hmac(this.hash, storedKey, authMessage);
    if (final.proof.length !== clientSignature.length) return failure('not-authorized');
    const clientKey = xorBuffers(final.proof, clientSignature);
    const candidate = digest(this.hash, clientKey);
    if (candidate.length !== storedKey.length || !timingSafeEqual(candidate, storedKey)) {
      return failure('not-authorized');
    }
    if (!authzidMatches(pending.first.authzid, username, this.options.domain)) {
      return failure('invalid-authzid');
    }
    const serverSignature = hmac(this.hash, Buffer.from(credentials.serverKey, 'base64'), authMessage);
    return {
      kind: 'success',
      username,
      data: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'),
    };
  }

  /** The same name always gets the same salt, so probing twice does not reveal a fake. */
  private fakeSalt(name: string): string {
    return hmac('SHA-256', this.options.fakeSaltKey, `${this.hash}\0${name}`)
      .subarray(0, FAKE_SALT_BYTES)
      .toString('base64');
  }
}
