// The supervisor's voice in a live call (issue 17): take the call's voice from the agent, talk
// to the caller from the microphone, hand the call back. While the console holds a call's voice
// it sends a keepalive every second (the server hands the call back to the agent after 3 s of
// nothing); while the talk key is held it sends 20 ms μ-law frames ('S' frames) on the live feed.
// In the desktop app the desk's own microphone talks instead (cpal, in the app: `mic_*`
// commands), on the same server path; the console shows its level and device.

import { mulaw } from 'alawmulaw';
import { api, ApiError, getToken } from './api';
import { actions } from './actions.svelte';
import { desktop } from './desktop';
import { feed } from './feed.svelte';

/** The desk microphone as the desktop app reports it (`mic_status`). */
export type MicStatus = { device: string | null; call_sid: string | null; talking: boolean; level_dbfs: number; frames_sent: number; error: string | null };

/** μ-law bytes per 20 ms frame at 8 kHz. */
const FRAME = 160;

/** A voice frame as the live feed takes it: 'S', track 0, the CallSid, the position on the
 * supervisor's clock (u64 big-endian, ms), then 160 bytes of μ-law. */
export function encodeVoiceFrame(callSid: string, positionMs: number, audio: Uint8Array): Uint8Array {
  const sid = new TextEncoder().encode(callSid).slice(0, 255);
  const out = new Uint8Array(3 + sid.length + 8 + audio.length);
  out[0] = 0x53;
  out[1] = 0;
  out[2] = sid.length;
  out.set(sid, 3);
  new DataView(out.buffer).setBigUint64(3 + sid.length, BigInt(positionMs));
  out.set(audio, 11 + sid.length);
  return out;
}

class Voice {
  /** The call whose voice this console holds. */
  holding: string | null = $state(null);
  /** The live feed has shown this console as the holder since the take (until then, the
   *  call's state on the board may not have caught up with the take's answer). */
  confirmed = $state(false);
  /** The talk key is down and frames are going out. */
  talking = $state(false);
  /** The microphone's level, 0–1, while talking. */
  level = $state(0);
  /** The open mic is on: talking without holding the key (Shift+M toggles it). */
  openMic = $state(false);
  /** The desk microphone's input devices and the chosen one (desktop app only). */
  devices: string[] = $state([]);
  device: string | null = $state(null);

  private deskTimer: ReturnType<typeof setInterval> | null = null;

  private keepalive: ReturnType<typeof setInterval> | null = null;
  private ctx: AudioContext | null = null;
  private stream: MediaStream | null = null;
  private pending = new Float32Array(0);
  private positionMs = 0;

  async take(sid: string) {
    try {
      await api('POST', `/api/calls/${sid}/voice/take`);
    } catch (e) {
      actions.show(`Take over refused: ${e instanceof ApiError ? e.message : String(e)}`, true);
      return;
    }
    this.confirmed = false;
    this.holding = sid;
    const alive = () => feed.sendJson({ type: 'voice_keepalive', call_sid: sid });
    alive();
    this.keepalive = setInterval(alive, 1000);
    if (desktop) this.devices = await desktop.invoke<string[]>('mic_devices').catch(() => []);
    actions.show('You are live with the caller');
  }

  /** The desk microphone to use (desktop app): none is the system's default. */
  async chooseDevice(device: string | null) {
    this.device = device;
    await desktop?.invoke('mic_select', { device });
  }

  /** Shift+M: the open mic on or off (talking without holding the key). */
  async toggleOpenMic() {
    if (!this.holding) return;
    this.openMic = !this.openMic;
    if (this.openMic) await this.startTalking();
    else this.stopTalking();
  }

  async handBack() {
    const sid = this.holding;
    if (!sid) return;
    this.stopTalking();
    try {
      await api('POST', `/api/calls/${sid}/voice/hand-back`);
      actions.show('Call handed back to the AI');
    } catch (e) {
      actions.show(`Hand back refused: ${e instanceof ApiError ? e.message : String(e)}`, true);
    }
    this.release();
  }

  /** The voice is no longer ours (handed back, lost, taken by another, the call ended). */
  release() {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    this.openMic = false;
    this.stopTalking();
    this.holding = null;
    this.confirmed = false;
    void desktop?.invoke('mic_release');
  }

  async startTalking() {
    const sid = this.holding;
    if (!sid || this.talking) return;
    this.talking = true;
    if (desktop) return this.startDeskMic(sid);
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
      this.ctx = new AudioContext({ sampleRate: 8000 });
      await this.ctx.resume();
      await this.ctx.audioWorklet.addModule('/mic-worklet.js');
      const node = new AudioWorkletNode(this.ctx, 'mic-frames');
      node.port.onmessage = (m) => this.onSamples(sid, m.data as Float32Array);
      this.ctx.createMediaStreamSource(this.stream).connect(node);
    } catch (e) {
      actions.show(`Microphone unavailable: ${String(e)}`, true);
      this.stopTalking();
      return;
    }
    if (!this.talking) return; // released while the microphone opened
    feed.sendJson({ type: 'talk', call_sid: sid });
  }

  /** The desk's microphone through the desktop app (the same server path, its own feed). */
  private async startDeskMic(sid: string) {
    try {
      await desktop!.invoke('mic_talk', { callId: sid, token: getToken() ?? '' });
    } catch (e) {
      actions.show(`Microphone unavailable: ${String(e)}`, true);
      this.talking = false;
      return;
    }
    if (this.deskTimer) clearInterval(this.deskTimer);
    this.deskTimer = setInterval(async () => {
      const s = await desktop!.invoke<MicStatus>('mic_status').catch(() => null);
      if (!s) return;
      // −60 dBFS reads as empty, 0 dBFS as full.
      this.level = this.talking ? Math.max(0, Math.min(1, (s.level_dbfs + 60) / 60)) : 0;
      if (s.error) {
        actions.show(`Microphone: ${s.error}`, true);
        this.stopTalking();
      }
    }, 100);
  }

  stopTalking() {
    if (!this.talking) return;
    this.talking = false;
    this.level = 0;
    this.openMic = false;
    if (desktop) {
      if (this.deskTimer) clearInterval(this.deskTimer);
      this.deskTimer = null;
      void desktop.invoke('mic_stop_talking');
      return;
    }
    this.pending = new Float32Array(0);
    feed.sendJson({ type: 'stop_talking' });
    void this.ctx?.close();
    this.ctx = null;
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
  }

  private onSamples(sid: string, block: Float32Array) {
    if (!this.talking || this.holding !== sid) return;
    const all = new Float32Array(this.pending.length + block.length);
    all.set(this.pending);
    all.set(block, this.pending.length);
    let at = 0;
    for (; at + FRAME <= all.length; at += FRAME) {
      const pcm = new Int16Array(FRAME);
      let sum = 0;
      for (let i = 0; i < FRAME; i++) {
        const v = Math.max(-1, Math.min(1, all[at + i]));
        pcm[i] = v * 32767;
        sum += v * v;
      }
      this.level = Math.min(1, Math.sqrt(sum / FRAME) * 4);
      feed.sendBinary(encodeVoiceFrame(sid, this.positionMs, mulaw.encode(pcm)));
      this.positionMs += 20;
    }
    this.pending = all.slice(at);
  }
}

export const voice = new Voice();
