// What the server processes cost, read from /proc: CPU seconds (user + system) and resident memory.
import { readFileSync, readdirSync } from 'node:fs';

/** USER_HZ: the unit of utime and stime in /proc/<pid>/stat on Linux. */
const TICKS_PER_SECOND = 100;

export interface ProcessSample {
  readonly pid: number;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may hold spaces: fields are counted after its closing one.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

export function sampleProcess(pid: number): ProcessSample | undefined {
  const fields = statFields(pid);
  if (fields === undefined) return undefined;
  // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command; 24 (rss, pages) is 22.
  const ticks = Number(fields[11]) + Number(fields[12]);
  let rssBytes = 0;
  try {
    const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    rssBytes = Number(kb ?? 0) * 1024;
  } catch {
    return undefined;
  }
  return { pid, cpuSeconds: ticks / TICKS_PER_SECOND, rssBytes };
}

export interface ProcessEntry {
  readonly pid: number;
  readonly ppid: number;
  /** The command name (`comm`): at most 15 characters of the executable's name. */
  readonly comm: string;
}

/**
 * Every live process. Zombies count as gone: they do no work, and orphans of a killed tree may stay zombies
 * for good where PID 1 never reaps them.
 */
export function processTable(): ProcessEntry[] {
  const table: ProcessEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const close = text.lastIndexOf(')');
    const [state = '?', ppid = '0'] = text.slice(close + 2).split(' ');
    if (state === 'Z' || state === 'X') continue;
    table.push({ pid: Number(name), ppid: Number(ppid), comm: text.slice(text.indexOf('(') + 1, close) });
  }
  return table;
}

/** The processes below `root`, nearest first. */
export function descendants(root: number, table: readonly ProcessEntry[] = processTable()): ProcessEntry[] {
  const found: ProcessEntry[] = [];
  for (let parents = new Set([root]); parents.size > 0;) {
    const children = table.filter((entry) => parents.has(entry.ppid));
    found.push(...children);
    parents = new Set(children.map((entry) => entry.pid));
  }
  return found;
}

/** `pid` and every live process below it. */
export function processTree(pid: number): number[] {
  return [pid, ...descendants(pid).map((entry) => entry.pid)];
}

export function isRunning(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** The processes of one named component (a Starling role, Kafka, Redis...) in a measured run. */
export interface Component {
  readonly name: string;
  readonly pids: () => number[];
}

export interface ComponentSample {
  readonly name: string;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

export function sampleComponents(components: readonly Component[]): ComponentSample[] {
  return components.map((component) => {
    let cpuSeconds = 0;
    let rssBytes = 0;
    for (const pid of component.pids()) {
      const sample = sampleProcess(pid);
      if (sample === undefined) continue;
      cpuSeconds += sample.cpuSeconds;
      rssBytes += sample.rssBytes;
    }
    return { name: component.name, cpuSeconds, rssBytes };
  });
}

/** CPU used between two samples of the same components, and the memory at the later one. */
export function usageBetween(
  before: readonly ComponentSample[],
  after: readonly ComponentSample[],
): ComponentSample[] {
  return after.map((sample, index) => ({
    name: sample.name,
    cpuSeconds: sample.cpuSeconds - (before[index]?.cpuSeconds ?? 0),
    rssBytes: sample.rssBytes,
  }));
}
