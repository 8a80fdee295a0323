/**
 * The markers on the recording's waveform (issue 19): each transcript line, alert, dispatch and
 * supervisor action of a call, and the reviewer's notes, at their place on the recording.
 *
 * The recording starts when the media stream does (`stream_started`): an event at `at_ms` (ms
 * since the epoch) is at `at_ms − stream start` on it; a transcript line uses its own
 * `stream_ms` (where its audio begins) when it has one.
 */
import { describe } from './describe';
import type { CallEvent } from './types/CallEvent';
import type { Note } from './types/Note';

/** What a marker stands for; each kind has its own colour on the waveform. */
export type MarkerKind = 'caller' | 'agent' | 'supervisor' | 'alert' | 'dispatch' | 'note';

/** One marker: where on the recording (ms from its start), what, and the words for a tooltip. */
export interface Marker {
  at_ms: number;
  kind: MarkerKind;
  label: string;
  /** A transcript line: a tick without a label, never merged. */
  line: boolean;
}

/** The short label each kind of event carries on the waveform (lines are only ticks: there are
 *  many). */
export const LABELLED: Record<MarkerKind, string | null> = {
  caller: null,
  agent: null,
  supervisor: 'Supervisor',
  alert: 'Alert',
  dispatch: 'Dispatch',
  note: 'Note',
};

function kindOf(ev: CallEvent): MarkerKind | null {
  switch (ev.type) {
    case 'transcript_final':
      return ev.speaker === 'caller' ? 'caller' : ev.by ? 'supervisor' : 'agent';
    case 'alert':
      return 'alert';
    case 'dispatched':
    case 'dispatch_recalled':
    case 'unit_attached':
      return 'dispatch';
    case 'mode_changed':
    case 'whisper':
    case 'alert_acknowledged':
    case 'handed_off':
      return 'supervisor';
    default:
      return null;
  }
}

/** Labelled markers of one kind closer than this, ms, are one marker (a dispatch and its units). */
export const MERGE_MS = 1000;

/** The markers of a call's events (in order) and the reviewer's notes, sorted by time; labelled
 *  markers (not lines) of one kind within `MERGE_MS` of each other are merged, their words
 *  joined. */
export function recordingMarkers(events: CallEvent[], notes: Note[] = []): Marker[] {
  const start = events.find((e) => e.type === 'stream_started')?.at_ms;
  if (start === undefined) return [];
  const out: Marker[] = [];
  for (const ev of events) {
    const kind = kindOf(ev);
    if (!kind) continue;
    const at = ev.type === 'transcript_final' && ev.stream_ms != null ? ev.stream_ms : ev.at_ms - start;
    if (at >= 0) out.push({ at_ms: at, kind, label: describe(ev), line: ev.type === 'transcript_final' });
  }
  for (const n of notes) out.push({ at_ms: n.at_ms, kind: 'note', label: n.text, line: false });
  out.sort((a, b) => a.at_ms - b.at_ms);
  const merged: Marker[] = [];
  const last: Partial<Record<MarkerKind, Marker>> = {};
  for (const m of out) {
    const prev = last[m.kind];
    if (!m.line && prev && m.at_ms - prev.at_ms < MERGE_MS) {
      prev.label += `; ${m.label}`;
      continue;
    }
    merged.push(m);
    if (!m.line) last[m.kind] = m;
  }
  return merged;
}
