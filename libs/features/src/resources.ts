// Choosing among a user's resources, shared by the features that deliver to the bare JID.
import type { SessionRecord } from '@starling/ports';

/** RFC 6121 §8.5.2.1.1: the available resources with the highest non-negative priority, all of them if tied. */
export function highestPriority(sessions: readonly SessionRecord[]): SessionRecord[] {
  let best = -1;
  let chosen: SessionRecord[] = [];
  for (const session of sessions) {
    if (!session.available || session.priority < 0 || session.priority < best) continue;
    if (session.priority > best) {
      best = session.priority;
      chosen = [];
    }
    chosen.push(session);
  }
  return chosen;
}
