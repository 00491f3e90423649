// RFC 7622 §3.2-3.4: prepares address parts: PRECIS (RFC 8264, RFC 8265) and IDNA2008 (RFC 5890-5893).
import { isIPv6, SocketAddress } from 'node:net';
import { JidError } from './jid.ts';
import { punycodeDecode, punycodeEncode } from './precis-punycode.ts';
import { bidiClass, isVirama, joiningType, type BidiClass } from './precis-tables.ts';

const MAX_OCTETS = 1023;
const MAX_LABEL_OCTETS = 63;
// Preparation never shrinks a part to less than a quarter of its code units (composition joins at most a
// few units into one character of two or more octets), so anything longer is rejected before Unicode work.
const MAX_INPUT_UNITS = 4 * MAX_OCTETS;

// RFC 8264 §8-9: the derived property, written as sets rather than as the ordered rules. Both classes leave
// out what earlier rules take away: default ignorables and noncharacters (§9.13), old Hangul jamo (§9.9),
// and the code points RFC 5892 §2.6 lists as DISALLOWED exceptions (§9.6). The sets name code points, not
// user-perceived characters, so combining marks in them are meant.
const EXCLUDED = String.raw`\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF\u0640\u07FA\u302E-\u302F\u3031-\u3035\u303B`;
// CONTEXTJ and CONTEXTO code points (RFC 5892 Appendix A): allowed by the class, then checked in context.
const CONTEXTUAL_SET = String.raw`\u00B7\u0375\u05F3\u05F4\u30FB\u0660-\u0669\u06F0-\u06F9\u200C-\u200D`;
// The PVALID exceptions of RFC 5892 §2.6 that fall outside the letter and digit categories.
const PVALID_EXCEPTIONS = String.raw`\u06FD\u06FE\u0F0B\u3007`;

// LetterDigits (§9.1) and ASCII7 (§9.11); HasCompat (§9.17) is checked on the whole string.
const IDENTIFIER_CLASS = new RegExp(
  // eslint-disable-next-line no-misleading-character-class
  String.raw`^[\x21-\x7E${PVALID_EXCEPTIONS}${CONTEXTUAL_SET}[[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]--[${EXCLUDED}]]]*$`,
  'v',
);
// IdentifierClass plus what it leaves to FreeformClass: HasCompat, OtherLetterDigits, Spaces, Symbols and
// Punctuation (§9.14-9.18). Controls and the other format, private-use and separator characters stay out.
const FREEFORM_CLASS = new RegExp(
  // eslint-disable-next-line no-misleading-character-class
  String.raw`^[\x20-\x7E${PVALID_EXCEPTIONS}${CONTEXTUAL_SET}[[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]--[${EXCLUDED}]]]*$`,
  'v',
);
// RFC 5892 §2: LetterDigits (A) and LDH (E) minus Unstable (B), IgnorableProperties (C), IgnorableBlocks (D)
// and OldHangulJamo (I). Unstable is mostly checked on the whole string; the set removes the few code points
// that only case folding, not lowercasing, changes.
const IDNA_LABEL = new RegExp(
  // eslint-disable-next-line no-misleading-character-class
  String.raw`^[\-\u00DF\u03C2${PVALID_EXCEPTIONS}${CONTEXTUAL_SET}[[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]--[${EXCLUDED}\p{White_Space}\u20D0-\u20FF\u{1D100}-\u{1D24F}\u0345\u1C80-\u1C88\u13F8-\u13FD\uAB70-\uABBF]]]*$`,
  'v',
);

const CONTEXTUAL = new RegExp(`[${CONTEXTUAL_SET}]`, 'v');
const GREEK = /^\p{Script=Greek}$/u;
const HEBREW = /^\p{Script=Hebrew}$/u;
const KANA_OR_HAN = /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u;

// RFC 8265 §3.3.2 width mapping: U+3000 and the halfwidth and fullwidth forms, each mapped to its
// decomposition.
const WIDE_OR_NARROW = /[\u3000\uFF01-\uFFEE]/g;
// RFC 8265 §4.2.2: non-ASCII spaces become U+0020.
const NON_ASCII_SPACE = new RegExp(String.raw`[\p{Zs}--[\x20]]`, 'gv');
// RFC 7622 §3.3.1: characters PRECIS allows that would break the address syntax or XML.
const LOCALPART_FORBIDDEN = /["&'/:<>@]/;
// RFC 5895 §2: ideographic full stops separate labels like "." does.
const IDEOGRAPHIC_STOPS = /[\u3002\uFF61]/g;
// Lowercasing turns Cherokee capitals into small letters, but case folding (which IDNA2008 stability is
// defined by) maps them the other way.
const CHEROKEE_SMALL = /[\u13F8-\u13FD\uAB70-\uABBF]/g;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const STARTS_WITH_MARK = /^\p{M}/u;
const ASCII_ONLY = /^\p{ASCII}*$/u;

// Code units 0x21-0x7E a prepared localpart may contain: ASCII7 (RFC 8264 §9.11) minus RFC 7622 §3.3.1.
const LOCALPART_ASCII = new Uint8Array(128);
for (let c = 0x21; c <= 0x7e; c++) LOCALPART_ASCII[c] = 1;
for (const ch of '"&\'/:<>@') LOCALPART_ASCII[ch.charCodeAt(0)] = 0;

/**
 * Prepares a localpart (RFC 7622 §3.3): the UsernameCaseMapped profile of RFC 8265 §3.3 plus the characters
 * RFC 7622 §3.3.1 forbids. Throws JidError if the result is empty, too long or not allowed.
 */
export function prepareLocalpart(local: string): string {
  if (local === '') throw new JidError('empty localpart');
  if (local.length > MAX_INPUT_UNITS) throw new JidError('localpart too long');
  let upper = false;
  for (let i = 0; i < local.length; i++) {
    const c = local.charCodeAt(i);
    if (c >= 0x80 || LOCALPART_ASCII[c] !== 1) return prepareUnicodeLocalpart(local);
    if (c >= 0x41 && c <= 0x5a) upper = true;
  }
  if (local.length > MAX_OCTETS) throw new JidError('localpart too long');
  return upper ? local.toLowerCase() : local;
}

function enforceUsernameCaseMapped(s: string): string {
  return mapWidth(s).toLowerCase().normalize('NFC');
}

function prepareUnicodeLocalpart(local: string): string {
  let out = enforceUsernameCaseMapped(local);
  // RFC 8264 §7: case mapping and normalization can feed each other, so the rules repeat until stable.
  for (let round = 1; ; round++) {
    const again = enforceUsernameCaseMapped(out);
    if (again === out) break;
    if (round === 3) throw new JidError('localpart does not stabilize');
    out = again;
  }
  if (!inIdentifierClass(out) || LOCALPART_FORBIDDEN.test(out)) {
    throw new JidError('localpart contains a disallowed character');
  }
  const classes = bidiClasses(out);
  if (hasRightToLeft(classes) && !satisfiesBidiRule(classes)) {
    throw new JidError('localpart violates the bidi rule');
  }
  if (Buffer.byteLength(out) > MAX_OCTETS) throw new JidError('localpart too long');
  return out;
}

/**
 * Prepares a resourcepart (RFC 7622 §3.4): the OpaqueString profile of RFC 8265 §4.2. Throws JidError if
 * the result is empty, too long or not allowed.
 */
export function prepareResourcepart(resource: string): string {
  if (resource === '') throw new JidError('empty resourcepart');
  if (resource.length > MAX_INPUT_UNITS) throw new JidError('resourcepart too long');
  let ascii = true;
  for (let i = 0; i < resource.length; i++) {
    const c = resource.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      ascii = false;
      break;
    }
  }
  const out = ascii ? resource : resource.replace(NON_ASCII_SPACE, ' ').normalize('NFC');
  if (!ascii && !inFreeformClass(out)) throw new JidError('resourcepart contains a disallowed character');
  if ((ascii ? out.length : Buffer.byteLength(out)) > MAX_OCTETS) throw new JidError('resourcepart too long');
  return out;
}

/**
 * Prepares a domainpart (RFC 7622 §3.2): strips one trailing dot, keeps IPv4 and bracketed IPv6 literals,
 * and otherwise maps (lowercase, halfwidth, NFC) and validates each label under IDNA2008, turning A-labels
 * into U-labels. Throws JidError if the domain is empty, too long or not a valid host name.
 */
export function prepareDomainpart(domain: string): string {
  if (domain.length > MAX_INPUT_UNITS) throw new JidError('domainpart too long');
  return prepareAsciiHostname(domain) ?? prepareUnicodeDomainpart(domain);
}

// The common case: LDH labels that need at most ASCII lowercasing. Anything unusual, including A-labels and
// labels with "--" in the third and fourth position, goes to the full path for a precise verdict.
function prepareAsciiHostname(domain: string): string | undefined {
  let end = domain.length;
  if (end > 0 && domain.charCodeAt(end - 1) === 0x2e) end--;
  if (end === 0 || end > MAX_OCTETS) return undefined;
  let upper = false;
  let labelStart = 0;
  for (let i = 0; i <= end; i++) {
    const c = i === end ? 0x2e : domain.charCodeAt(i);
    if (c === 0x2e) {
      const length = i - labelStart;
      if (length === 0 || length > MAX_LABEL_OCTETS) return undefined;
      if (domain.charCodeAt(labelStart) === 0x2d || domain.charCodeAt(i - 1) === 0x2d) return undefined;
      if (
        length >= 4 &&
        domain.charCodeAt(labelStart + 2) === 0x2d &&
        domain.charCodeAt(labelStart + 3) === 0x2d
      ) {
        return undefined;
      }
      labelStart = i + 1;
    } else if (c >= 0x41 && c <= 0x5a) {
      upper = true;
    } else if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) {
      return undefined;
    }
  }
  const out = end === domain.length ? domain : domain.slice(0, end);
  return upper ? out.toLowerCase() : out;
}

function prepareUnicodeDomainpart(domain: string): string {
  if (domain.startsWith('[')) return prepareIpv6Literal(domain);
  let mapped = foldDomain(mapWidth(domain).replace(IDEOGRAPHIC_STOPS, '.')).normalize('NFC');
  if (mapped.endsWith('.')) mapped = mapped.slice(0, -1);
  if (mapped === '') throw new JidError('empty domainpart');
  const labels = mapped.split('.').map(prepareLabel);
  // RFC 5893 §1.4: once one label is right-to-left, every label of the name must pass the bidi rule.
  const classes = labels.map(bidiClasses);
  if (classes.some(hasRightToLeft) && !classes.every(satisfiesBidiRule)) {
    throw new JidError('domainpart violates the bidi rule');
  }
  const out = labels.join('.');
  if (Buffer.byteLength(out) > MAX_OCTETS) throw new JidError('domainpart too long');
  return out;
}

function prepareIpv6Literal(domain: string): string {
  const address = domain.endsWith(']') ? domain.slice(1, -1) : '';
  // Zone identifiers name an interface of one host; they mean nothing in an address others route to.
  if (address.includes('%') || !isIPv6(address)) throw new JidError('invalid IP literal in domainpart');
  return `[${new SocketAddress({ address, family: 'ipv6' }).address}]`;
}

function prepareLabel(label: string): string {
  if (label === '') throw new JidError('empty label in domainpart');
  if (ASCII_ONLY.test(label)) {
    if (label.length > MAX_LABEL_OCTETS) throw new JidError('domainpart label too long');
    if (label.startsWith('xn--')) return decodeALabel(label);
    if (!LDH_LABEL.test(label)) throw new JidError('domainpart contains a disallowed character');
    return label;
  }
  // Every code point costs at least one character of the A-label; this also keeps encoding, whose time grows
  // with the square of the label, to short labels.
  if (codePoints(label).length > MAX_LABEL_OCTETS - 4) throw new JidError('domainpart label too long');
  checkULabel(label);
  if (4 + punycodeEncode(label).length > MAX_LABEL_OCTETS) throw new JidError('domainpart label too long');
  return label;
}

// RFC 5891 §5.3: an A-label must decode to a valid U-label that encodes back to exactly the same A-label.
function decodeALabel(label: string): string {
  const decoded = punycodeDecode(label.slice(4));
  if (decoded === undefined || ASCII_ONLY.test(decoded)) throw new JidError('invalid A-label in domainpart');
  checkULabel(decoded);
  if (`xn--${punycodeEncode(decoded)}` !== label) throw new JidError('invalid A-label in domainpart');
  return decoded;
}

// RFC 5891 §5.4 and RFC 5892: a U-label is in NFC, stable under case folding and NFKC, made of PVALID code
// points (CONTEXTJ and CONTEXTO ones in their context), and neither starts with a mark nor uses hyphens
// where LDH labels may not.
function checkULabel(label: string): void {
  const stable =
    label.normalize('NFC') === label &&
    foldDomain(label) === label &&
    label.normalize('NFKC') === label &&
    !label.normalize('NFD').includes('\u0345');
  if (!stable || !IDNA_LABEL.test(label) || !contextRulesHold(label)) {
    throw new JidError('domainpart contains a disallowed character');
  }
  const cps = codePoints(label);
  if (
    STARTS_WITH_MARK.test(label) ||
    cps[0] === 0x2d ||
    cps[cps.length - 1] === 0x2d ||
    (cps[2] === 0x2d && cps[3] === 0x2d)
  ) {
    throw new JidError('domainpart label is not a valid U-label');
  }
}

function foldDomain(s: string): string {
  return s.toLowerCase().replace(CHEROKEE_SMALL, (ch) => ch.toUpperCase());
}

function mapWidth(s: string): string {
  return s.replace(WIDE_OR_NARROW, (ch) => ch.normalize('NFKC'));
}

/** Whether every code point of `s` is valid in the PRECIS IdentifierClass (RFC 8264 §4.2), in context. */
export function inIdentifierClass(s: string): boolean {
  return IDENTIFIER_CLASS.test(s) && !hasCompat(s) && contextRulesHold(s);
}

/** Whether every code point of `s` is valid in the PRECIS FreeformClass (RFC 8264 §4.3), in context. */
export function inFreeformClass(s: string): boolean {
  return FREEFORM_CLASS.test(s) && contextRulesHold(s);
}

// RFC 8264 §9.17: a code point that NFKC changes. For a string in NFC, NFKC changes the string exactly
// when it changes one of its code points, which saves normalizing each code point on its own.
function hasCompat(s: string): boolean {
  if (s.normalize('NFC') === s) return s.normalize('NFKC') !== s;
  for (const ch of s) if (ch.normalize('NFKC') !== ch) return true;
  return false;
}

function codePoints(s: string): number[] {
  return Array.from(s, (ch) => ch.codePointAt(0) ?? 0);
}

function isScript(cp: number | undefined, script: RegExp): boolean {
  return cp !== undefined && script.test(String.fromCodePoint(cp));
}

// RFC 5892 Appendix A, which RFC 8264 §9.6 and §9.8 apply to PRECIS strings as a whole.
function contextRulesHold(s: string): boolean {
  if (!CONTEXTUAL.test(s)) return true;
  const cps = codePoints(s);
  const arabicIndic = cps.some((cp) => cp >= 0x0660 && cp <= 0x0669);
  const extendedArabicIndic = cps.some((cp) => cp >= 0x06f0 && cp <= 0x06f9);
  const kanaOrHan = KANA_OR_HAN.test(s);
  return cps.every((cp, i) => {
    const before = cps[i - 1];
    const after = cps[i + 1];
    if (cp === 0x200c) return (before !== undefined && isVirama(before)) || joinsAcross(cps, i);
    if (cp === 0x200d) return before !== undefined && isVirama(before);
    if (cp === 0x00b7) return before === 0x6c && after === 0x6c;
    if (cp === 0x0375) return isScript(after, GREEK);
    if (cp === 0x05f3 || cp === 0x05f4) return isScript(before, HEBREW);
    if (cp === 0x30fb) return kanaOrHan;
    if (cp >= 0x0660 && cp <= 0x0669) return !extendedArabicIndic;
    if (cp >= 0x06f0 && cp <= 0x06f9) return !arabicIndic;
    return true;
  });
}

// RFC 5892 A.1: a non-joiner between a left- or dual-joining and a right- or dual-joining letter, with only
// transparent characters in between.
function joinsAcross(cps: number[], at: number): boolean {
  let i = at - 1;
  while (i >= 0 && joiningType(cps[i] ?? 0) === 'T') i--;
  const left = i >= 0 ? joiningType(cps[i] ?? 0) : 'U';
  let j = at + 1;
  while (j < cps.length && joiningType(cps[j] ?? 0) === 'T') j++;
  const right = j < cps.length ? joiningType(cps[j] ?? 0) : 'U';
  return (left === 'L' || left === 'D') && (right === 'R' || right === 'D');
}

function bidiClasses(s: string): BidiClass[] {
  const out: BidiClass[] = [];
  for (const ch of s) out.push(bidiClass(ch.codePointAt(0) ?? 0));
  return out;
}

// RFC 5893 §1.4: a right-to-left label contains at least one R, AL or AN character.
function hasRightToLeft(classes: BidiClass[]): boolean {
  return classes.some((c) => c === 'R' || c === 'AL' || c === 'AN');
}

const RTL_ALLOWED: ReadonlySet<BidiClass> = new Set([
  'R',
  'AL',
  'AN',
  'EN',
  'ES',
  'CS',
  'ET',
  'ON',
  'BN',
  'NSM',
]);
const LTR_ALLOWED: ReadonlySet<BidiClass> = new Set(['L', 'EN', 'ES', 'CS', 'ET', 'ON', 'BN', 'NSM']);

// RFC 5893 §2, all six conditions.
function satisfiesBidiRule(classes: BidiClass[]): boolean {
  const first = classes[0];
  let last = classes.length - 1;
  while (last > 0 && classes[last] === 'NSM') last--;
  const end = classes[last];
  if (first === 'R' || first === 'AL') {
    if (!classes.every((c) => RTL_ALLOWED.has(c))) return false;
    if (end !== 'R' && end !== 'AL' && end !== 'EN' && end !== 'AN') return false;
    return !(classes.includes('EN') && classes.includes('AN'));
  }
  if (first === 'L') {
    return classes.every((c) => LTR_ALLOWED.has(c)) && (end === 'L' || end === 'EN');
  }
  return false;
}
