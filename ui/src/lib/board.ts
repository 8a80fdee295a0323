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

/** An incident on the board (issue 18): its calls, and what they say together. */
export interface IncidentGroup {
  /** `I-<n>`'s number; null for a call the incident list has not numbered yet. */
  id: number | null;
  /** Stable key: the incident number, else the call. */
  key: string;
  /** Its calls, oldest first. */
  calls: LiveCall[];
  /** The best priority of its live calls. */
  priority: Priority | null;
  /** The first known incident type code. */
  type: string | null;
  /** The first call's location that names a street or landmark. */
  location: string;
  /** Units out on any of its calls (dispatched, en route, on scene), without repeats. */
  units: string[];
  /** The furthest dispatch phase of its calls. */
  dispatch: 'none' | 'proposed' | 'dispatched' | 'recalled';
  /** Whether every call has ended. */
  ended: boolean;
}

const PHASE: Record<IncidentGroup['dispatch'], number> = { none: 0, recalled: 1, proposed: 2, dispatched: 3 };

function sameGroup(a: IncidentGroup, b: IncidentGroup): boolean {
  return a.id === b.id && a.priority === b.priority && a.type === b.type && a.location === b.location && a.dispatch === b.dispatch && a.ended === b.ended
    && a.calls.length === b.calls.length && a.calls.every((c, i) => c === b.calls[i])
    && a.units.length === b.units.length && a.units.every((u, i) => u === b.units[i]);
}

/**
 * Groups calls by incident: priority first (P1 first, unknown last), then the oldest. With
 * `cache` (kept by the caller between calls), a group that has not changed is the same object
 * as before, so the board re-renders only the incidents that changed.
 */
export function groupByIncident(calls: LiveCall[], cache?: Map<string, IncidentGroup>): IncidentGroup[] {
  const byKey = new Map<string, LiveCall[]>();
  for (const c of calls) {
    const key = c.incident_id !== null && c.incident_id !== undefined ? `I-${c.incident_id}` : c.call_sid;
    const list = byKey.get(key);
    if (list) list.push(c);
    else byKey.set(key, [c]);
  }
  const groups: IncidentGroup[] = [];
  const keep = (g: IncidentGroup) => {
    const prev = cache?.get(g.key);
    const out = prev && sameGroup(prev, g) ? prev : g;
    cache?.set(g.key, out);
    groups.push(out);
  };
  for (const [key, list] of byKey) {
    list.sort((a, b) => a.started_at_ms - b.started_at_ms || (a.call_sid < b.call_sid ? -1 : 1));
    const live = list.filter((c) => !c.ended_reason);
    const prios = (live.length ? live : list).map(priorityOf).filter((p): p is Priority => !!p);
    const priority = prios.sort((a, b) => RANK[a] - RANK[b])[0] ?? null;
    const units: string[] = [];
    for (const c of list) for (const u of c.units) if (u.status !== 'available' && u.status !== 'cleared' && !units.includes(u.unit)) units.push(u.unit);
    const dispatch = list.map((c) => c.dispatch.phase).reduce((a, b) => (PHASE[b] > PHASE[a] ? b : a), 'none' as IncidentGroup['dispatch']);
    keep({
      id: list[0].incident_id ?? null,
      key,
      calls: list,
      priority,
      type: list.map((c) => c.incident?.incident_type?.value).find((t) => !!t) ?? null,
      location: list.map((c) => locationLine(c.incident?.location?.value)).find((l) => !!l) ?? '',
      units,
      dispatch,
      ended: live.length === 0,
    });
  }
  if (cache) for (const k of [...cache.keys()]) if (!byKey.has(k)) cache.delete(k);
  return groups.sort((a, b) => {
    const ra = a.priority ? RANK[a.priority] : 9, rb = b.priority ? RANK[b.priority] : 9;
    if (ra !== rb) return ra - rb;
    return a.calls[0].started_at_ms - b.calls[0].started_at_ms || (a.key < b.key ? -1 : 1);
  });
}

/** The board's order of calls: incident by incident, each incident's calls oldest first. */
export function boardOrder(groups: IncidentGroup[]): LiveCall[] {
  return groups.flatMap((g) => g.calls);
}

/** Calls that started within the last minute before `nowMs`. */
export function callsInLastMinute(calls: LiveCall[], nowMs: number): number {
  return calls.filter((c) => c.started_at_ms > nowMs - 60_000 && c.started_at_ms <= nowMs + 1000).length;
}
