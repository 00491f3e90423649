// RFC 6120 §4 and §11 (RFC 7395 §3.3 for WebSocket framing): the hardened streaming XML parser for client streams.
import { SaxesParser, type SaxesAttributeNS, type SaxesTagNS, type XMLDecl } from 'saxes';
import { Element, escapeXml } from './element.ts';
import { StreamError, type StreamErrorCondition } from './errors.ts';
import { NS_CLIENT, NS_STREAM } from './namespaces.ts';

export interface StreamParserLimits {
  /** Largest top-level element (stanza), in bytes of input. Also bounds the stream header and what precedes it. */
  maxStanzaBytes: number;
  /** Deepest nesting inside one top-level element (the stanza itself is depth 1). */
  maxDepth: number;
  /** Most attributes on one element, namespace declarations included. */
  maxAttributes: number;
  /** Most direct child elements of one element (text between them is merged, not counted). */
  maxChildren: number;
}

/** 'stream': one RFC 6120 `<stream:stream>` document; 'framed': RFC 7395 WebSocket messages, one element after another. */
export type StreamParserMode = 'stream' | 'framed';

export interface StreamParserEvents {
  /** 'stream' mode: the <stream:stream> header opened; attrs as written (namespace declarations included). */
  streamStart(attrs: Record<string, string>): void;
  /**
   * A complete top-level element: a stanza or nonza (depth 1 in 'stream' mode, each root element in 'framed' mode).
   * In 'stream' mode its `parent` is a childless copy of the stream header, so `getNS()` sees inherited declarations.
   */
  element(el: Element): void;
  /** 'stream' mode: </stream:stream> arrived. */
  streamEnd(): void;
  /** The stream must end with this error; no further events follow. */
  error(err: StreamError): void;
}

type TokenizerOptions = { xmlns: true; fragment: false; forceXMLVersion: true; defaultXMLVersion: '1.0' };

// Large writes are decoded and tokenized in slices so the size limit is enforced while a big write is still being parsed.
const SLICE_BYTES = 16_384;
const STREAMING = { stream: true } as const;
// Framed input may hold several root elements in a row; saxes accepts one, so it sees them inside this wrapper.
const FRAMED_WRAPPER = '<framed>';
const STANZA_NAMES: ReadonlySet<string> = new Set(['message', 'presence', 'iq']);
const MAX_ERROR_TEXT = 200;
// Thrown from inside saxes callbacks to unwind its state machine once the stream is over; never leaves write().
const HALT = new Error('stream parser halted');

/**
 * saxes's handler slots, set by name rather than through `on()`: `on()` stores each handler under a
 * computed key, and V8 turns an object that gains properties that way, past a dozen, into a dictionary,
 * which made every connection's tokenizer 3 KB larger and its property reads slower. The names are
 * saxes 6's own; one misspelt would leave its event unhandled, which the parser's tests show.
 */
interface TokenizerHandlers {
  openTagStartHandler: () => void;
  attributeHandler: () => void;
  openTagHandler: (tag: SaxesTagNS) => void;
  closeTagHandler: () => void;
  cdataHandler: (text: string) => void;
  xmldeclHandler: (decl: XMLDecl) => void;
  doctypeHandler: () => void;
  commentHandler: () => void;
  piHandler: () => void;
  errorHandler: (err: Error) => void;
}

/**
 * Maps a saxes well-formedness message to a stream error condition. saxes reports every problem as a
 * plain message, so the condition is recovered from its wording:
 * - any complaint about a prefix (unbound, `xmlns:` misuse, rebinding `xml`) is bad-namespace-prefix;
 * - DOCTYPE or an entity/element declaration (`<!` other than a comment or CDATA: saxes says "incorrect syntax"),
 *   comments, processing instructions and a misplaced XML declaration are restricted-xml (RFC 6120 §11.1);
 * - everything else (mismatched tags, attribute syntax, names, characters, entities) is not-well-formed.
 */
function conditionOf(message: string): StreamErrorCondition {
  if (message.includes('prefix')) return 'bad-namespace-prefix';
  if (/doctype|comment|processing instruction|at the start of the document|incorrect syntax/i.test(message)) {
    return 'restricted-xml';
  }
  return 'not-well-formed';
}

function isXmlSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/**
 * Streaming XML parser for what clients send: saxes tokenizes (strict XML 1.0 with namespaces), this class
 * enforces RFC 6120 restricted XML and the size limits and builds ltx elements. Every problem becomes exactly
 * one `error` event with a stream error condition; `write()` never throws.
 *
 * Positions: saxes reports offsets in UTF-16 code units of all text written to it, the limits are in bytes,
 * so the parser keeps the current decoded slice and maps an offset to bytes only at element boundaries.
 */
export class StreamParser {
  private readonly mode: StreamParserMode;
  private readonly events: StreamParserEvents;
  private limits: StreamParserLimits;
  private tokenizer: SaxesParser<TokenizerOptions>;
  private decoder = new TextDecoder('utf-8', { fatal: true });
  private done = false;
  /** Input came since the last hibernate(). */
  private active = true;
  /** hibernate() let go of the tokenizer and decoder; the next write makes new ones. */
  private asleep = false;
  /** The last byte written: a multi-byte character may be unfinished in the decoder unless it is ASCII. */
  private lastByte = 0;
  /** The stream header (or the framed wrapper) is open: what follows is top-level content. */
  private rootOpen = false;
  private header: Element | null = null;
  /** The top-level element under construction and its open descendants, outermost first. */
  private open: Element[] = [];
  private childCounts: number[] = [];
  private attributeCount = 0;
  /** A completed top-level element (or 'end') held until saxes has confirmed its end tag matched. */
  private pending: Element | 'end' | null = null;
  private pendingAt = -1;
  /** A `<` was seen at top level since the last top-level element ended; from there bytes count against the limit. */
  private inMarkup = false;
  private markupStartByte = 0;
  /** Offset up to which top-level text has been checked to be whitespace. */
  private scanFrom = 0;
  private slice = '';
  private sliceLength = 0;
  private sliceStart = 0;
  private sliceStartByte = 0;
  private sliceBytes = 0;
  private cursor = 0;
  private cursorByte = 0;
  private scanned = 0;

  constructor(mode: StreamParserMode, limits: StreamParserLimits, events: StreamParserEvents) {
    this.mode = mode;
    this.limits = limits;
    this.events = events;
    this.tokenizer = this.newTokenizer(mode === 'framed' ? FRAMED_WRAPPER : '');
    if (mode === 'framed') {
      this.sliceLength = FRAMED_WRAPPER.length;
      this.scanFrom = FRAMED_WRAPPER.length;
      this.rootOpen = true;
    }
  }

  /**
   * A tokenizer that has read `opening` (the framed wrapper, or a stream header to go on after hibernating)
   * before any handler is attached, so that it produces no events.
   */
  private newTokenizer(opening: string): SaxesParser<TokenizerOptions> {
    const tokenizer = new SaxesParser<TokenizerOptions>({
      xmlns: true,
      fragment: false,
      forceXMLVersion: true,
      defaultXMLVersion: '1.0',
    });
    if (opening !== '') tokenizer.write(opening);
    const t = tokenizer as unknown as TokenizerHandlers;
    t.openTagStartHandler = () => this.onOpenTagStart();
    t.attributeHandler = () => this.onAttribute();
    t.openTagHandler = (tag) => this.onOpenTag(tag);
    t.closeTagHandler = () => this.onCloseTag();
    t.cdataHandler = (text) => this.onCData(text);
    t.xmldeclHandler = (decl) => this.onXmlDecl(decl);
    t.doctypeHandler = () => this.abort('restricted-xml', 'DOCTYPE is not allowed');
    t.commentHandler = () => this.abort('restricted-xml', 'comments are not allowed');
    t.piHandler = () => this.abort('restricted-xml', 'processing instructions are not allowed');
    t.errorHandler = (err) => this.onTokenizerError(err);
    return tokenizer;
  }

  /**
   * Lets go of the tokenizer and the UTF-8 decoder (most of an idle connection's parser memory) if no
   * input came since the previous call and the stream rests between top-level elements; the next write
   * makes new ones that go on where these stopped. Called periodically for every connection, it puts
   * those idle for a whole period to sleep. Returns whether it did now.
   */
  hibernate(): boolean {
    if (this.active) {
      this.active = false;
      return false;
    }
    const resting =
      this.rootOpen &&
      this.open.length === 0 &&
      this.pending === null &&
      !this.inMarkup &&
      this.lastByte < 0x80;
    if (this.asleep || this.done || !resting) return false;
    this.asleep = true;
    this.tokenizer = ASLEEP;
    this.decoder = ASLEEP_DECODER;
    return true;
  }

  /** Whether hibernate() let go of the tokenizer and no input came since. */
  get sleeping(): boolean {
    return this.asleep;
  }

  /** After hibernate(): a tokenizer inside the stream again (the header's namespace declarations in scope). */
  private wake(): void {
    this.asleep = false;
    this.decoder = new TextDecoder('utf-8', { fatal: true });
    const opening = this.mode === 'framed' ? FRAMED_WRAPPER : openingTag(this.header);
    this.tokenizer = this.newTokenizer(opening);
    // Positions count from the new tokenizer's start: all of it is behind, checked, at top level.
    this.sliceStart = 0;
    this.sliceLength = opening.length;
    this.sliceStartByte = 0;
    this.sliceBytes = Buffer.byteLength(opening, 'utf8');
    this.scanFrom = opening.length;
    this.pendingAt = -1;
  }

  /** Feeds raw bytes from the socket (UTF-8; may split multi-byte characters and tokens anywhere). */
  write(chunk: Uint8Array): void {
    if (this.done) return;
    this.active = true;
    if (chunk.length > 0) this.lastByte = chunk[chunk.length - 1] ?? 0;
    try {
      if (this.asleep) this.wake();
      if (chunk.length <= SLICE_BYTES) {
        this.feed(chunk);
      } else {
        for (let offset = 0; offset < chunk.length; offset += SLICE_BYTES) {
          this.feed(chunk.subarray(offset, offset + SLICE_BYTES));
        }
      }
    } catch (err) {
      // Anything but HALT is a throwing event handler or a saxes invariant: end the stream rather than the process.
      if (err !== HALT) this.fail('internal-server-error', 'stream parser failure');
    }
  }

  /** Changes limits for what follows (e.g. raise maxStanzaBytes after authentication). */
  setLimits(limits: StreamParserLimits): void {
    this.limits = limits;
  }

  /** Ends the parser; no events after this. */
  close(): void {
    this.done = true;
    this.release();
  }

  /**
   * Characters examined so far by the tokenizer and by the parser's own checks. It grows linearly with the
   * input however it is split into writes; exposed for tests and metrics.
   */
  get scannedChars(): number {
    return this.scanned;
  }

  private feed(bytes: Uint8Array): void {
    if (this.done) return;
    let text: string;
    try {
      text = this.decoder.decode(bytes, STREAMING);
    } catch {
      // RFC 6120 §4.9.3.22 would also allow unsupported-encoding here; malformed input is treated alike.
      return this.abort('not-well-formed', 'invalid UTF-8');
    }
    if (text.length === 0) return;
    this.sliceStart += this.sliceLength;
    this.sliceStartByte += this.sliceBytes;
    this.slice = text;
    this.sliceLength = text.length;
    this.sliceBytes = Buffer.byteLength(text, 'utf8');
    this.cursor = this.sliceStart;
    this.cursorByte = this.sliceStartByte;
    this.scanned += 2 * text.length;
    this.tokenizer.write(text);
    this.flushPending();
    this.checkSliceEnd();
    // An idle connection should not pin its last read: saxes keeps its chunk until the next write.
    this.slice = '';
    this.tokenizer.write('');
  }

  private checkSliceEnd(): void {
    const endByte = this.sliceStartByte + this.sliceBytes;
    if (!this.rootOpen) {
      if (endByte > this.limits.maxStanzaBytes) this.abort('policy-violation', 'stream header too large');
      return;
    }
    if (!this.inMarkup) this.scanTopLevel(this.sliceStart + this.sliceLength);
    if (this.inMarkup && endByte - this.markupStartByte > this.limits.maxStanzaBytes) {
      this.abort('policy-violation', 'stanza too large');
    }
  }

  /**
   * Checks top-level text up to `until` is whitespace and finds the `<` that starts the next element.
   * saxes is given no text handler at top level, so keepalive whitespace is never buffered.
   */
  private scanTopLevel(until: number): void {
    const { slice, sliceStart } = this;
    const from = Math.max(this.scanFrom, sliceStart) - sliceStart;
    const end = until - sliceStart;
    let i = from;
    for (; i < end; i++) {
      const code = slice.charCodeAt(i);
      if (isXmlSpace(code)) continue;
      this.scanned += i - from;
      if (code !== 0x3c) this.abort('not-well-formed', 'text outside stanzas');
      this.inMarkup = true;
      this.markupStartByte = this.byteAt(sliceStart + i);
      return;
    }
    this.scanned += i - from;
    this.scanFrom = until;
  }

  private byteAt(position: number): number {
    if (this.sliceBytes === this.sliceLength) return this.sliceStartByte + position - this.sliceStart;
    if (position < this.cursor) {
      this.cursor = this.sliceStart;
      this.cursorByte = this.sliceStartByte;
    }
    const from = this.cursor - this.sliceStart;
    const to = position - this.sliceStart;
    this.scanned += to - from;
    this.cursorByte += Buffer.byteLength(this.slice.slice(from, to), 'utf8');
    this.cursor = position;
    return this.cursorByte;
  }

  private onOpenTagStart(): void {
    this.flushPending();
    this.attributeCount = 0;
    if (!this.rootOpen) return;
    const depth = this.open.length;
    if (depth === 0) {
      if (!this.inMarkup) this.scanTopLevel(this.tokenizer.position);
      this.tokenizer.on('text', this.onText);
    } else {
      const children = (this.childCounts[depth - 1] ?? 0) + 1;
      this.childCounts[depth - 1] = children;
      if (children > this.limits.maxChildren) this.abort('policy-violation', 'too many child elements');
    }
    if (depth + 1 > this.limits.maxDepth) this.abort('policy-violation', 'elements nested too deeply');
  }

  private onAttribute(): void {
    this.attributeCount += 1;
    if (this.attributeCount > this.limits.maxAttributes) {
      this.abort('policy-violation', 'too many attributes');
    }
  }

  private onOpenTag(tag: SaxesTagNS): void {
    if (!this.rootOpen) {
      this.openStream(tag);
      return;
    }
    const el = new Element(tag.name);
    copyAttributes(tag.attributes, el.attrs);
    const parent = this.open[this.open.length - 1];
    if (parent === undefined) {
      if (tag.local === 'stream' && tag.uri === NS_STREAM) {
        // A restart is the caller's job (a new parser); a header here is well-formed but not a valid stream.
        this.abort('invalid-xml', 'stream header inside the stream');
      }
      if (STANZA_NAMES.has(tag.local) && tag.uri !== NS_CLIENT) {
        this.abort('invalid-namespace', `${tag.local} must be qualified by ${NS_CLIENT}`);
      }
      el.parent = this.header;
    } else {
      parent.cnode(el);
    }
    this.open.push(el);
    this.childCounts.push(0);
  }

  private openStream(tag: SaxesTagNS): void {
    if (tag.local !== 'stream') this.abort('invalid-xml', 'the stream must open with a stream header');
    if (tag.uri !== NS_STREAM) this.abort('invalid-namespace', `the stream namespace must be ${NS_STREAM}`);
    if (tag.ns[''] !== NS_CLIENT) {
      this.abort('invalid-namespace', `the content namespace must be ${NS_CLIENT}`);
    }
    if (this.byteAt(this.tokenizer.position) > this.limits.maxStanzaBytes) {
      this.abort('policy-violation', 'stream header too large');
    }
    const attrs: Record<string, string> = {};
    copyAttributes(tag.attributes, attrs);
    this.header = new Element(tag.name, attrs);
    this.rootOpen = true;
    this.scanFrom = this.tokenizer.position;
    this.events.streamStart({ ...attrs });
    if (this.done) throw HALT;
  }

  private readonly onText = (text: string): void => {
    const el = this.open[this.open.length - 1];
    if (el !== undefined) appendText(el, text);
  };

  private onCData(text: string): void {
    const el = this.open[this.open.length - 1];
    if (el === undefined) this.abort('not-well-formed', 'text outside stanzas');
    appendText(el, text);
  }

  private onCloseTag(): void {
    this.flushPending();
    const el = this.open.pop();
    const position = this.tokenizer.position;
    if (el === undefined) {
      if (this.mode === 'framed') this.abort('not-well-formed', 'unexpected end tag');
      if (!this.inMarkup) this.scanTopLevel(position);
      this.pending = 'end';
      this.pendingAt = position;
      return;
    }
    this.childCounts.pop();
    if (this.open.length > 0) return;
    if (this.byteAt(position) - this.markupStartByte > this.limits.maxStanzaBytes) {
      this.abort('policy-violation', 'stanza too large');
    }
    this.tokenizer.off('text');
    this.inMarkup = false;
    this.scanFrom = position;
    this.pending = el;
    this.pendingAt = position;
  }

  private onXmlDecl(decl: XMLDecl): void {
    if (decl.encoding !== undefined && decl.encoding.toLowerCase() !== 'utf-8') {
      this.abort('unsupported-encoding', 'only UTF-8 is supported');
    }
  }

  private onTokenizerError(err: Error): void {
    // saxes calls the close-tag handler before it checks the names match: an error at that very
    // position means the pending element was closed by the wrong tag and must not be delivered.
    if (this.pending !== null && this.tokenizer.position === this.pendingAt) this.pending = null;
    else this.flushPending();
    this.abort(conditionOf(err.message), err.message.slice(0, MAX_ERROR_TEXT));
  }

  private flushPending(): void {
    const pending = this.pending;
    if (pending === null) return;
    this.pending = null;
    if (pending === 'end') {
      this.done = true;
      this.release();
      this.events.streamEnd();
      throw HALT;
    }
    this.events.element(pending);
    if (this.done) throw HALT;
  }

  private abort(condition: StreamErrorCondition, text: string): never {
    this.fail(condition, text);
    throw HALT;
  }

  private fail(condition: StreamErrorCondition, text: string): void {
    if (this.done) return;
    this.done = true;
    this.release();
    try {
      this.events.error(new StreamError(condition, text));
    } catch {
      // The stream is over either way; a failing error handler must not turn into a crash.
    }
  }

  private release(): void {
    this.slice = '';
    this.open = [];
    this.childCounts = [];
    this.pending = null;
    this.header = null;
  }
}

function copyAttributes(from: Record<string, SaxesAttributeNS>, to: Record<string, unknown>): void {
  for (const name in from) {
    const attr = from[name];
    if (attr !== undefined) to[name] = attr.value;
  }
}

// Adjacent text and CDATA become one child, so text cannot multiply the children of an element.
function appendText(el: Element, text: string): void {
  const { children } = el;
  const last = children.length - 1;
  const previous = children[last];
  if (typeof previous === 'string') children[last] = previous + text;
  else children.push(text);
}

/** Stand-ins while asleep: never written to, they only keep the fields' types. */
const ASLEEP = new SaxesParser<TokenizerOptions>({
  xmlns: true,
  fragment: false,
  forceXMLVersion: true,
  defaultXMLVersion: '1.0',
});
const ASLEEP_DECODER = new TextDecoder('utf-8', { fatal: true });

/** The stream header's start tag with only its namespace declarations: all that later elements inherit. */
function openingTag(header: Element | null): string {
  if (header === null) throw new Error('a stream parser hibernated before its header');
  let tag = `<${header.name}`;
  for (const [name, value] of Object.entries(header.attrs)) {
    if (name === 'xmlns' || name.startsWith('xmlns:')) tag += ` ${name}='${escapeXml(String(value))}'`;
  }
  return `${tag}>`;
}
