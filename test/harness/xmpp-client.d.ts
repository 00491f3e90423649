// The part of @xmpp/client (which ships no types) that the conformance harness uses.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';

  export interface XmppElement {
    name: string;
    attrs: Record<string, string>;
    toString(): string;
  }

  export interface XmppClient extends EventEmitter {
    start(): Promise<{ toString(): string }>;
    stop(): Promise<void>;
    send(element: XmppElement): Promise<void>;
    write(text: string): Promise<void>;
    jid?: { toString(): string };
    status: string;
    reconnect: { stop(): void; delay: number };
    mechanisms: unknown[];
    /** XEP-0198 state: `outbound` counts sent stanzas the server acknowledged, `inbound` those received. */
    streamManagement: { enabled: boolean; id: string; outbound: number; inbound: number };
  }

  export function client(options: {
    service: string;
    domain: string;
    /** Milliseconds to wait for each stream open, close or request (the library's default is 2000). */
    timeout?: number;
    username?: string;
    password?: string;
    resource?: string;
    credentials?: (
      authenticate: (creds: object, mechanism: string) => Promise<void>,
      mechanisms: string[],
    ) => Promise<void>;
  }): XmppClient;

  export function xml(
    name: string,
    attrs?: Record<string, string> | null,
    ...children: unknown[]
  ): XmppElement;
}
