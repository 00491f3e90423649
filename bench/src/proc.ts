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

/** `pid` and every process below it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields === undefined) continue;
    const parent = Number(fields[1]);
    const list = children.get(parent) ?? [];
    list.push(Number(entry));
    children.set(parent, list);
  }
  const tree: number[] = [];
  const pending = [pid];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    tree.push(next);
    pending.push(...(children.get(next) ?? []));
  }
  return tree;
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
