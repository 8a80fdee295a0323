// What the board shows of a call: its priority, order, status line and labels.

import type { LiveCall } from './types/LiveCall';
import type { Priority } from './types/Priority';
import type { AlertKind } from './types/AlertKind';
import type { Source } from './types/Source';
import type { Location } from './types/Location';

/** The call's priority: the incident's, else the proposal's. */
export function priorityOf(c: LiveCall): Priority | null {
  return c.incident?.priority?.value ?? c.dispatch.priority ?? null;
}

const RANK: Record<Priority, number> = { P1: 1, P2: 2, P3: 3, P4: 4 };

/** Board order: priority (P1 first, unknown last), then the oldest call first. */
export function sortCalls(calls: LiveCall[]): LiveCall[] {
  return [...calls].sort((a, b) => {
    const pa = priorityOf(a), pb = priorityOf(b);
    const ra = pa ? RANK[pa] : 9, rb = pb ? RANK[pb] : 9;
    if (ra !== rb) return ra - rb;
    if (a.started_at_ms !== b.started_at_ms) return a.started_at_ms - b.started_at_ms;
    return a.call_sid < b.call_sid ? -1 : a.call_sid > b.call_sid ? 1 : 0;
  });
}

/** mm:ss (or h:mm:ss) since `fromMs`. */
export function elapsed(fromMs: number, nowMs: number): string {
  const s = Math.max(0, Math.floor((nowMs - fromMs) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, '0'), ss = String(sec).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** One line for a location: `123 Main Street`, or what the caller said. */
export function locationLine(l: Location | undefined | null): string {
  if (!l) return '';
  const street = [l.number, l.street].filter(Boolean).join(' ');
  const main = street || l.landmark || l.said;
  const extra = [l.unit ? `apt ${l.unit}` : '', l.cross_street ? `x ${l.cross_street}` : '', l.city ?? ''].filter(Boolean);
  return [main, ...extra].join(', ');
}

/** The status line of a card. */
export function statusLine(c: LiveCall, nowMs: number): string {
  if (c.ended_reason) return 'Ended';
  if (c.handed_off === 'takeover') return 'Taken over';
  if (c.handed_off === 'transfer') return 'Transferred';
  if (c.fallback_reason || c.status === 'fallback') return 'To human line';
  if (c.mode === 'takeover') return `Supervisor ${c.voice_holder ?? ''} live with the caller`;
  switch (c.dispatch.phase) {
    case 'proposed': {
      const at = c.dispatch.auto_dispatch_at_ms;
      const wait = c.dispatch.waiting_too_long ? ' · waiting' : '';
      return at ? `Dispatch proposed · auto in ${Math.max(0, Math.ceil((at - nowMs) / 1000))} s` : `Dispatch proposed${wait}`;
    }
    case 'dispatched':
      return 'Dispatched';
    case 'recalled':
      return 'Dispatch recalled';
    default:
      return c.status === 'processing' ? 'Connecting' : 'With agent';
  }
}

/** Short text of an alert. */
export function alertText(a: AlertKind): string {
  switch (a.kind) {
    case 'danger': return a.word.toUpperCase();
    case 'silent_caller': return 'Silent caller';
    case 'agent_stuck': return 'Agent repeating';
    case 'extraction_disagreement': return `AI ${a.model} ≠ keywords ${a.keywords}`;
    case 'low_confidence': return 'Low confidence';
    case 'model_error': return `Model error: ${a.reason}`;
    case 'dispatch_waiting': return 'Dispatch waiting';
    case 'auto_dispatched': return 'Auto-dispatched';
    case 'supervisor_lost': return `Supervisor ${a.user} lost: back to the AI`;
  }
}

/** AI / KW / SUP: where a field came from. */
export function sourceLabel(s: Source): string {
  return s.kind === 'model' ? 'AI' : s.kind === 'keywords' ? 'KW' : `SUP ${s.user}`;
}
