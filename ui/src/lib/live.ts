// The console's view of a live call, kept by applying CallEvents: the same view the server
// projects from its one fold of the events (`CallFold::live`, crates/call/src/fold.rs). Both
// are checked against one fixture (src/lib/fixtures/live-call.json: events and the state the
// server built from them).

import type { CallEvent } from './types/CallEvent';
import type { LiveCall } from './types/LiveCall';
import type { LiveLine } from './types/LiveLine';
import type { UnitStatus } from './types/UnitStatus';

/** Transcript lines a live call keeps (LIVE_TRANSCRIPT_LINES on the server). */
export const LIVE_TRANSCRIPT_LINES = 40;

/** An empty call, as `LiveCall::default()`. */
export function emptyCall(): LiveCall {
  return {
    call_sid: '',
    from: '',
    to: '',
    simulated: false,
    started_at_ms: 0,
    status: 'processing',
    talking: 'silence',
    incident: null,
    incident_id: null,
    possible_duplicate: null,
    dispatch: {
      phase: 'none',
      priority: null,
      message: null,
      units: [],
      auto_dispatch_at_ms: null,
      proposed_at_ms: null,
      dispatched_at_ms: null,
      dispatched_by: null,
      recalled_by: null,
      waiting_too_long: false,
      audio_url: null,
    },
    alerts: [],
    transcript: [],
    units: [],
    agent_questions: 0,
    barge_ins: 0,
    model_errors: 0,
    fallback_reason: null,
    handed_off: null,
    whispers: 0,
    ended_reason: null,
    mode: 'ai',
    voice_holder: null,
    last_seq: null,
    last_at_ms: 0,
  };
}

/** The URL of a voiced dispatch message (`dispatch_audio_url` on the server). */
export function dispatchAudioUrl(callSid: string, revision: number): string {
  return `/api/calls/${callSid}/dispatch/${revision}/audio.wav`;
}

function pushLine(c: LiveCall, line: LiveLine) {
  c.transcript.push(line);
  if (c.transcript.length > LIVE_TRANSCRIPT_LINES) {
    c.transcript.splice(0, c.transcript.length - LIVE_TRANSCRIPT_LINES);
  }
}

function openLine(c: LiveCall, itemId: string): LiveLine | undefined {
  for (let i = c.transcript.length - 1; i >= 0; i--) {
    const l = c.transcript[i];
    if (l.item_id === itemId && !l.final) return l;
  }
  return undefined;
}

/** A unit attached to the call, as the server's fold has it (crates/call/src/fold.rs): a unit
 * free again (released or cleared) gets a fresh assignment; one still out is left as it is. */
function attachUnit(c: LiveCall, unit: string) {
  const u = c.units.find((x) => x.unit === unit);
  if (!u) c.units.push({ unit, status: 'dispatched' });
  else if (u.status === 'available' || u.status === 'cleared') u.status = 'dispatched';
}

/** A move of a unit attached to the call (a unit never attached cannot move). */
function moveUnit(c: LiveCall, unit: string, status: UnitStatus) {
  const u = c.units.find((x) => x.unit === unit);
  if (u) u.status = status;
}

/**
 * Applies one event to a call, in place. Events at or below `last_seq` are skipped (a
 * snapshot may already hold them). Returns whether the event was applied.
 */
export function applyEvent(c: LiveCall, ev: CallEvent): boolean {
  if (c.last_seq !== null && ev.seq <= c.last_seq) return false;
  c.last_seq = ev.seq;
  c.last_at_ms = ev.at_ms;
  if (c.call_sid === '') c.call_sid = ev.call_sid;
  const d = c.dispatch;
  switch (ev.type) {
    case 'call_created':
      c.from = ev.from;
      c.to = ev.to;
      c.simulated = ev.simulated;
      c.started_at_ms = ev.at_ms;
      break;
    case 'status_changed':
      c.status = ev.status;
      break;
    case 'talking':
      c.talking = ev.who;
      break;
    case 'transcript_delta': {
      const open = openLine(c, ev.item_id);
      if (open) open.text += ev.delta;
      else pushLine(c, { speaker: ev.speaker, item_id: ev.item_id, text: ev.delta, at_ms: ev.at_ms, final: false, interrupted: false, by: ev.by });
      break;
    }
    case 'transcript_final': {
      const line: LiveLine = { speaker: ev.speaker, item_id: ev.item_id, text: ev.text, at_ms: ev.at_ms, final: true, interrupted: ev.interrupted, by: ev.by, language: ev.language };
      const open = openLine(c, ev.item_id);
      if (open) Object.assign(open, line);
      else pushLine(c, line);
      break;
    }
    case 'transcript_translated': {
      // Beside the final line it translates (the latest of that item id), never in its place.
      for (let i = c.transcript.length - 1; i >= 0; i--) {
        const line = c.transcript[i];
        if (line.item_id === ev.item_id && line.final) {
          line.translation = ev.translation;
          break;
        }
      }
      break;
    }
    case 'agent_questions':
      c.agent_questions = ev.count;
      break;
    case 'barge_in':
      c.barge_ins += 1;
      break;
    case 'model_error':
      c.model_errors += 1;
      break;
    case 'incident_updated':
      c.incident = structuredClone(ev.incident);
      break;
    case 'alert':
      c.alerts.push({ alert_id: ev.alert_id, alert: ev.alert, severity: ev.severity, at_ms: ev.at_ms, acknowledged_by: null });
      break;
    case 'alert_acknowledged': {
      const a = c.alerts.find((x) => x.alert_id === ev.alert_id);
      if (a) a.acknowledged_by = ev.by;
      break;
    }
    case 'dispatch_proposed':
      d.phase = 'proposed';
      d.priority = ev.priority;
      d.message = ev.message;
      d.units = [...ev.units];
      d.auto_dispatch_at_ms = ev.auto_dispatch_at_ms;
      d.proposed_at_ms = ev.at_ms;
      break;
    case 'dispatched':
      d.phase = 'dispatched';
      d.message = ev.message;
      d.units = [...ev.units];
      d.auto_dispatch_at_ms = null;
      d.dispatched_at_ms = ev.at_ms;
      d.dispatched_by = ev.by;
      d.recalled_by = null;
      d.waiting_too_long = false;
      break;
    case 'dispatch_waiting':
      d.waiting_too_long = true;
      break;
    case 'incident_linked':
      c.incident_id = ev.incident;
      c.possible_duplicate = null;
      break;
    case 'possible_duplicate':
      c.possible_duplicate = { incident: ev.incident, match: ev.match };
      break;
    case 'kept_apart':
      c.possible_duplicate = null;
      break;
    case 'dispatch_withdrawn':
      d.phase = 'none';
      d.units = [];
      d.message = null;
      d.auto_dispatch_at_ms = null;
      d.waiting_too_long = false;
      break;
    case 'dispatch_recalled':
      d.phase = 'recalled';
      d.recalled_by = ev.by;
      d.auto_dispatch_at_ms = null;
      break;
    case 'dispatch_audio':
      if (ev.status === 'completed') d.audio_url = dispatchAudioUrl(c.call_sid, ev.revision);
      break;
    case 'unit_attached':
      attachUnit(c, ev.unit);
      break;
    case 'unit_on_scene':
      moveUnit(c, ev.unit, 'on_scene');
      break;
    case 'unit_status_changed':
      moveUnit(c, ev.unit, ev.status);
      break;
    case 'whisper':
      c.whispers += 1;
      break;
    case 'fallback':
      c.fallback_reason = ev.reason;
      break;
    case 'handed_off':
      c.handed_off = ev.action;
      break;
    case 'mode_changed':
      c.mode = ev.mode;
      c.voice_holder = ev.mode === 'takeover' ? ev.by : null;
      break;
    case 'call_ended':
      c.ended_reason = ev.reason;
      c.talking = 'silence';
      c.voice_holder = null;
      break;
    default:
      // stage, stream_started, dtmf, model_event_unknown, input_skipped, function_call,
      // legal_hold, fallback_completed, model_reconnected: not shown live.
      break;
  }
  return true;
}
