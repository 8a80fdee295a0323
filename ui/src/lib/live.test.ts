import { describe, expect, it } from 'vitest';
import fixture from './fixtures/live-call.json';
import { applyEvent, emptyCall, LIVE_TRANSCRIPT_LINES } from './live';
import type { CallEvent } from './types/CallEvent';
import type { LiveCall } from './types/LiveCall';
import { groupByIncident as byIncident, priorityOf } from './board';
import { speakerLabel } from './describe';

const events = fixture.events as unknown as CallEvent[];
const expected = fixture.state as unknown as LiveCall;

describe('the live-call reducer', () => {
  it('turns the events of a real call into the state the server built', () => {
    const c = emptyCall();
    for (const e of events) applyEvent(c, e);
    expect(c).toEqual(expected);
  });

  it('a snapshot taken mid-call, followed by the rest of the events, gives the same state', () => {
    const half = Math.floor(events.length / 2);
    const snap = emptyCall();
    for (const e of events.slice(0, half)) applyEvent(snap, e);
    // The feed may repeat events the snapshot already holds: they are skipped by seq.
    const c = structuredClone(snap);
    for (const e of events.slice(half - 5)) applyEvent(c, e);
    expect(c).toEqual(expected);
  });

  it("keeps who a supervisor's line is by, partial and final", () => {
    const c = emptyCall();
    const base = { call_sid: 'CA1', at_ms: 1 };
    applyEvent(c, { ...base, seq: 0, type: 'transcript_delta', speaker: 'supervisor', item_id: 's1', delta: 'Stay ', by: 'ana' });
    expect(c.transcript[0]).toMatchObject({ speaker: 'supervisor', by: 'ana', final: false });
    applyEvent(c, { ...base, seq: 1, type: 'transcript_final', speaker: 'supervisor', item_id: 's1', text: 'Stay on the line.', interrupted: false, stream_ms: 1200, by: 'ana' });
    expect(c.transcript).toHaveLength(1);
    expect(c.transcript[0]).toMatchObject({ text: 'Stay on the line.', by: 'ana', final: true });
    expect(speakerLabel('supervisor', 'ana')).toBe('Supervisor (ana)');
    expect(speakerLabel('caller')).toBe('Caller');
    expect(speakerLabel('agent', null)).toBe('Agent');
  });

  it('keeps a line as spoken and puts its machine translation beside it', () => {
    const c = emptyCall();
    const base = { call_sid: 'CA1', at_ms: 1 };
    applyEvent(c, { ...base, seq: 0, type: 'transcript_final', speaker: 'caller', item_id: 'u1', text: '¡Hay un incendio!', interrupted: false, stream_ms: 800, language: 'es' });
    expect(c.transcript[0]).toMatchObject({ text: '¡Hay un incendio!', language: 'es', final: true });
    expect(c.transcript[0].translation).toBeUndefined();
    applyEvent(c, { ...base, seq: 1, type: 'transcript_translated', item_id: 'u1', translation: { from: 'es', to: 'en', text: 'There is a fire!', model: 'gpt-4.1-mini' } });
    expect(c.transcript).toHaveLength(1);
    expect(c.transcript[0]).toMatchObject({ text: '¡Hay un incendio!', translation: { from: 'es', to: 'en', text: 'There is a fire!' } });
    // A translation of a line the console no longer shows changes nothing.
    applyEvent(c, { ...base, seq: 2, type: 'transcript_translated', item_id: 'gone', translation: { from: 'ja', to: 'en', text: 'x', model: 'm' } });
    expect(c.transcript).toHaveLength(1);
  });

  it('replaces partial lines by the final line and keeps the last lines only', () => {
    const c = emptyCall();
    const base = { call_sid: 'CA1', at_ms: 1 };
    applyEvent(c, { ...base, seq: 0, type: 'transcript_delta', speaker: 'agent', item_id: 'i1', delta: '9 1 1, ' });
    applyEvent(c, { ...base, seq: 1, type: 'transcript_delta', speaker: 'agent', item_id: 'i1', delta: 'what is' });
    expect(c.transcript).toHaveLength(1);
    expect(c.transcript[0]).toMatchObject({ text: '9 1 1, what is', final: false });
    applyEvent(c, { ...base, seq: 2, type: 'transcript_final', speaker: 'agent', item_id: 'i1', text: '9 1 1, what is the address?', interrupted: false, stream_ms: null });
    expect(c.transcript).toHaveLength(1);
    expect(c.transcript[0].final).toBe(true);
    expect(applyEvent(c, { ...base, seq: 2, type: 'whisper', text: 'x', by: 'y' })).toBe(false);
    for (let i = 0; i < 100; i++) {
      applyEvent(c, { ...base, seq: 3 + i, type: 'transcript_final', speaker: 'caller', item_id: `u${i}`, text: 'help', interrupted: false, stream_ms: null });
    }
    expect(c.transcript).toHaveLength(LIVE_TRANSCRIPT_LINES);
    expect(c.transcript.at(-1)?.item_id).toBe('u99');
  });
});

describe('the board order', () => {
  it('puts priority first, then the oldest call', () => {
    const mk = (sid: string, started: number, p: 'P1' | 'P2' | 'P3' | 'P4' | null): LiveCall => {
      const c = emptyCall();
      c.call_sid = sid;
      c.started_at_ms = started;
      c.dispatch.priority = p;
      return c;
    };
    const calls = [mk('a', 5, 'P3'), mk('b', 1, null), mk('c', 9, 'P1'), mk('d', 2, 'P1'), mk('e', 3, 'P3')];
    expect(byIncident(calls).map((g) => g.calls[0].call_sid)).toEqual(['d', 'c', 'e', 'a', 'b']);
    expect(priorityOf(mk('x', 0, 'P2'))).toBe('P2');
  });
});

import { groupByIncident } from './board';
import { emptyCall as blank } from './live';

describe('the board grouped by incident', () => {
  const call = (sid: string, incident: number | null, started: number, prio: 'P1' | 'P2' | null, units: string[] = []) => {
    const c = blank();
    c.call_sid = sid;
    c.incident_id = incident;
    c.started_at_ms = started;
    c.dispatch.priority = prio;
    c.units = units.map((u) => ({ unit: u, status: 'dispatched' as const }));
    return c;
  };
  it('puts the calls of one incident together, the incident ranked by its best priority', () => {
    const groups = groupByIncident([call('CA3', 2, 30, 'P2'), call('CA1', 1, 10, 'P2', ['Engine 7']), call('CA2', 1, 20, 'P1'), call('CA4', null, 5, null)]);
    expect(groups.map((g) => g.key)).toEqual(['I-1', 'I-2', 'CA4']);
    expect(groups[0].calls.map((c) => c.call_sid)).toEqual(['CA1', 'CA2']);
    expect(groups[0].priority).toBe('P1');
    expect(groups[0].units).toEqual(['Engine 7']);
  });
});
