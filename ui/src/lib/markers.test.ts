import { describe, expect, it } from 'vitest';
import { recordingMarkers } from './markers';
import type { CallEvent } from './types/CallEvent';

const T0 = 1_764_000_000_000;
const ev = (seq: number, at: number, kind: object) => ({ call_sid: 'CA1', seq, at_ms: T0 + at, ...kind }) as unknown as CallEvent;

describe('recordingMarkers', () => {
  const events: CallEvent[] = [
    ev(0, 0, { type: 'call_created', from: '+15550100101', to: '+15550009111', simulated: true }),
    ev(1, 300, { type: 'stream_started', stream_sid: 'MZ1' }),
    ev(2, 3300, { type: 'transcript_final', speaker: 'agent', item_id: 'i0', text: '911, what is the address?', interrupted: false, stream_ms: 2900 }),
    ev(3, 7300, { type: 'transcript_final', speaker: 'caller', item_id: 'i1', text: 'There is a fire', interrupted: false, stream_ms: null }),
    ev(4, 8000, { type: 'alert', alert_id: 1, severity: 'danger', alert: { kind: 'fire_spreading' } }),
    ev(5, 9000, { type: 'dispatched', by: { kind: 'supervisor', user: 'sam' }, message: 'Engine 7', units: ['Engine 7'] }),
    ev(6, 9500, { type: 'mode_changed', mode: 'takeover', by: 'sam' }),
    ev(9, 9000, { type: 'unit_attached', unit: 'Engine 7' }),
    ev(7, 9800, { type: 'transcript_final', speaker: 'agent', item_id: 'i2', text: 'Stay outside', interrupted: false, stream_ms: 9400, by: 'sam' }),
    ev(8, 10000, { type: 'incident_updated', incident: {} }),
  ];

  it('places each line, alert, dispatch and supervisor action on the recording, with notes', () => {
    const m = recordingMarkers(events, [{ at_ms: 5000, text: 'caller hard to hear' }]);
    expect(m.map((x) => [x.at_ms, x.kind])).toEqual([
      [2900, 'agent'], // its own stream position
      [5000, 'note'],
      [7000, 'caller'], // no stream position: the event's time from the stream's start
      [7700, 'alert'],
      [8700, 'dispatch'],
      [9200, 'supervisor'],
      [9400, 'supervisor'], // the supervisor's own line
    ]);
    expect(m[1].label).toBe('caller hard to hear');
    expect(m[2].label).toBe('Caller: There is a fire');
    expect(m[4].label).toBe('Dispatched (sam); Engine 7 dispatched'); // one marker for the two
  });

  it('has nothing to place without a recording', () => {
    expect(recordingMarkers(events.filter((e) => e.type !== 'stream_started'))).toEqual([]);
  });
});
