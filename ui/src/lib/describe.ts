// One line of the timeline for an event (empty: not shown).

import type { CallEvent } from './types/CallEvent';
import { alertText } from './board';

/** Who spoke a transcript line: `Caller`, `Agent`, or `Supervisor (name)` (issue 17). */
export function speakerLabel(speaker: string, by?: string | null): string {
  if (speaker === 'caller') return 'Caller';
  if (speaker === 'supervisor') return by ? `Supervisor (${by})` : 'Supervisor';
  return 'Agent';
}

/** The timeline's words for an event, or '' for events the timeline leaves out. */
export function describe(ev: CallEvent): string {
  switch (ev.type) {
    case 'agent_profile': return `Agent profile ${ev.profile.name} v${ev.profile.version} (${ev.profile.model}, ${ev.profile.turn_detection.replace('_', ' ')}${ev.profile.prompt ? `, prompt ${ev.profile.prompt}` : ''}${ev.profile.languages.length > 1 ? `, languages ${ev.profile.languages.join(' ')}` : ''})`;
    case 'status_changed': return `Status: ${ev.status.replace('_', ' ')}`;
    case 'transcript_final': return `${speakerLabel(ev.speaker, ev.by)}: ${ev.text}`;
    case 'mode_changed': return ev.mode === 'takeover' ? `${ev.by} took over the call` : `${ev.by} handed the call back to the agent`;
    case 'incident_updated': return 'Incident updated';
    case 'alert': return `Alert: ${alertText(ev.alert)}`;
    case 'alert_acknowledged': return `Alert ${ev.alert_id} acknowledged by ${ev.by}`;
    case 'dispatch_proposed': return `Dispatch proposed: ${ev.message}`;
    case 'dispatched': return `Dispatched (${ev.by.kind === 'supervisor' ? ev.by.user : ev.by.kind.replace('_', ' ')})`;
    case 'dispatch_recalled': return `Dispatch recalled by ${ev.by}`;
    case 'dispatch_waiting': return 'Dispatch waiting past the hold window';
    case 'dispatch_audio': return `Dispatch message voiced (${Math.round(ev.duration_ms / 100) / 10} s)`;
    case 'whisper': return `Whisper by ${ev.by}: ${ev.text}`;
    case 'dtmf': return `Caller pressed ${ev.digit}`;
    case 'tool_answered': return ev.ok ? `${ev.name} answered (${ev.elapsed_ms} ms): ${ev.output}` : `${ev.name} failed, the agent was told: ${ev.output}`;
    case 'caller_silent': return `Caller silent for ${Math.round((ev.audio_end_ms - ev.audio_start_ms) / 1000)} s: the agent prompted them`;
    case 'unit_attached': return `${ev.unit} dispatched`;
    case 'unit_on_scene': return `${ev.unit} on scene`;
    case 'unit_status_changed': return `${ev.unit} ${ev.status.replace('_', ' ')}`;
    case 'barge_in': return `Caller talked over the agent (${ev.audio_end_ms} ms heard)`;
    case 'fallback': return `To the human line: ${ev.reason}`;
    case 'handed_off': return `${ev.action} by ${ev.by}`;
    case 'model_error': return `Model error: ${ev.code ?? ev.error_type}`;
    case 'model_reconnected': return ev.renewed ? 'Model session renewed' : 'Model reconnected';
    case 'call_ended': return `Call ended (${ev.reason})`;
    case 'function_call': return `AI reported: ${ev.arguments}`;
    default: return '';
  }
}
