// Listen-in in the browser: μ-law frames from the live feed, decoded (G.711, the alawmulaw
// package) and scheduled with Web Audio. Each track keeps its own play-out clock with a 60 ms
// jitter target, so a late frame or a burst does not click; a frame that arrives too late is
// played at once rather than dropped.

import { mulaw } from 'alawmulaw';
import type { Track } from './types/Track';

const SAMPLE_RATE = 8000;
const JITTER_S = 0.06;

export class ListenPlayer {
  private ctx: AudioContext | null = null;
  private next: Partial<Record<Track, number>> = {};
  private gains: Partial<Record<Track, GainNode>> = {};
  /** Frames played per track (shown in the UI, read by the end-to-end test). */
  frames: Partial<Record<Track, number>> = {};
  muted: Partial<Record<Track, boolean>> = {};

  private ensure(): AudioContext {
    if (!this.ctx) this.ctx = new AudioContext();
    return this.ctx;
  }

  /** Starts (or resumes) audio output; call from a key press or click. */
  async start() {
    const ctx = this.ensure();
    if (ctx.state === 'suspended') await ctx.resume().catch(() => undefined);
    this.next = {};
    this.frames = {};
  }

  private levels: Partial<Record<Track, number>> = {};

  setMuted(track: Track, muted: boolean) {
    this.muted[track] = muted;
    const g = this.gains[track];
    if (g) g.gain.value = muted ? 0 : (this.levels[track] ?? 1);
  }

  /** Sets a track's volume, 0–2 (0 mutes). */
  setVolume(track: Track, level: number) {
    this.levels[track] = Math.max(0, Math.min(2, level));
    this.setMuted(track, level <= 0);
  }

  /** Plays one frame of μ-law audio of `track`. */
  play(track: Track, payload: Uint8Array) {
    const ctx = this.ensure();
    const pcm = mulaw.decode(payload);
    const buf = ctx.createBuffer(1, pcm.length, SAMPLE_RATE);
    const ch = buf.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    let gain = this.gains[track];
    if (!gain) {
      gain = ctx.createGain();
      gain.gain.value = this.muted[track] ? 0 : (this.levels[track] ?? 1);
      gain.connect(ctx.destination);
      this.gains[track] = gain;
    }
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(gain);
    const now = ctx.currentTime;
    let at = this.next[track] ?? now + JITTER_S;
    if (at < now) at = now + JITTER_S; // fell behind (a gap in the call): start again at the target
    src.start(at);
    this.next[track] = at + buf.duration;
    this.frames[track] = (this.frames[track] ?? 0) + 1;
  }

  stop() {
    this.next = {};
  }
}

/** Decodes a live-feed audio frame: 'A', track code, CallSid length and bytes, u64 BE ms, μ-law. */
export function decodeFrame(data: ArrayBuffer): { callSid: string; track: Track; streamMs: number; payload: Uint8Array } | null {
  const b = new Uint8Array(data);
  if (b.length < 11 || b[0] !== 0x41) return null;
  const tracks: Track[] = ['caller', 'agent', 'agent_cleared', 'dispatch'];
  const track = tracks[b[1]];
  const n = b[2];
  if (!track || b.length < 11 + n) return null;
  const callSid = new TextDecoder().decode(b.subarray(3, 3 + n));
  const view = new DataView(data, 3 + n, 8);
  const streamMs = Number(view.getBigUint64(0));
  return { callSid, track, streamMs, payload: b.subarray(11 + n) };
}
