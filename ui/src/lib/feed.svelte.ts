// The live feed: one WebSocket to /api/live, signed in with a single-use ticket. Keeps every
// live call's state (snapshot, then events through the same reducer as the server), acknowledges
// what it processed (the server pauses a console that falls behind and resyncs it), reconnects
// on its own with backoff, and plays listen-in audio.

import { api, wsUrl } from './api';
import { desktop } from './desktop';
import { actions } from './actions.svelte';
import { applyEvent, emptyCall } from './live';
import { decodeFrame, ListenPlayer } from './audio';
import type { CallEvent } from './types/CallEvent';
import type { LiveCall } from './types/LiveCall';
import type { LiveMessage } from './types/LiveMessage';
import type { Track } from './types/Track';

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'signed_out';

/** How long an ended call stays on the board, ms. */
const ENDED_LINGER_MS = 15_000;
const ACK_EVERY = 50;
const ACK_INTERVAL_MS = 250;

class Feed {
  calls: Record<string, LiveCall> = $state({});
  connection: Connection = $state('connecting');
  /** server clock − local clock, ms (for countdowns). */
  offsetMs = $state(0);
  resyncs = $state(0);
  listening: { call_sid: string; tracks: Track[] } | null = $state(null);
  listenFrames = $state(0);
  /** A lasting condition to show (the desk has no sound device). */
  notice: string | null = $state(null);
  player = new ListenPlayer();

  private ws: WebSocket | null = null;
  private received = 0;
  private acked = 0;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private retry = 0;
  private stopped = false;
  private endedAt = new Map<string, number>();
  private listeners = new Set<(ev: CallEvent) => void>();

  /** Sends a console message (dropped while the feed is down: the server's 3 s voice watchdog
   *  and the next keepalive cover it). */
  sendJson(msg: Record<string, unknown>) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Sends a binary frame (the supervisor's voice). */
  sendBinary(frame: Uint8Array) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(frame);
  }

  /** Calls `cb` with every event as it arrives; returns the unsubscribe function. */
  subscribe(cb: (ev: CallEvent) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private dropTimer: ReturnType<typeof setInterval> | null = null;

  start() {
    this.stopped = false;
    void this.open();
    this.dropTimer ??= setInterval(() => this.dropEnded(), 1000);
  }

  stop() {
    this.stopped = true;
    this.ws?.close();
  }

  now(): number {
    return Date.now() + this.offsetMs;
  }

  private async open() {
    if (this.stopped) return;
    this.connection = this.retry === 0 ? 'connecting' : 'reconnecting';
    let ticket: string;
    try {
      ticket = (await api<{ ticket: string }>('POST', '/api/live/ticket')).ticket;
    } catch (e) {
      if ((e as { status?: number }).status === 401) {
        this.connection = 'signed_out';
        return;
      }
      this.scheduleReconnect();
      return;
    }
    const ws = new WebSocket(wsUrl(`/api/live?ticket=${encodeURIComponent(ticket)}`));
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.received = 0;
    this.acked = 0;
    ws.onmessage = (m) => this.onMessage(m);
    ws.onclose = () => {
      if (this.ws === ws) {
        this.ws = null;
        this.listening = null;
        this.scheduleReconnect();
      }
    };
  }

  private scheduleReconnect() {
    if (this.stopped) return;
    this.connection = 'reconnecting';
    const delay = Math.min(8000, 500 * 2 ** this.retry);
    this.retry = Math.min(this.retry + 1, 5);
    setTimeout(() => void this.open(), delay);
  }

  private onMessage(m: MessageEvent) {
    if (m.data instanceof ArrayBuffer) {
      const f = decodeFrame(m.data);
      if (f && this.listening && f.callSid === this.listening.call_sid) {
        this.player.play(f.track, f.payload);
        this.listenFrames += 1;
        (globalThis as { __wfBench?: { audio: [number, string, number, string][] } }).__wfBench?.audio.push([Date.now(), f.track, f.streamMs, f.callSid]);
      }
      return;
    }
    const msg = JSON.parse(m.data as string) as LiveMessage;
    this.received += 1;
    this.handle(msg);
    if (this.received - this.acked >= ACK_EVERY) this.ack();
    else if (!this.ackTimer) this.ackTimer = setTimeout(() => this.ack(), ACK_INTERVAL_MS);
  }

  private ack() {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.ws?.readyState === WebSocket.OPEN && this.received > this.acked) {
      this.ws.send(JSON.stringify({ type: 'ack', received: this.received }));
      this.acked = this.received;
    }
  }

  private handle(msg: LiveMessage) {
    switch (msg.type) {
      case 'snapshot': {
        this.connection = 'live';
        this.retry = 0;
        this.offsetMs = msg.server_time_ms - Date.now();
        if (msg.reason === 'resync') this.resyncs += 1;
        const next: Record<string, LiveCall> = {};
        for (const c of msg.calls) next[c.call_sid] = c;
        // Calls that ended while we were away stay briefly, marked ended.
        for (const [sid, c] of Object.entries(this.calls)) {
          if (!next[sid] && this.endedAt.has(sid)) next[sid] = c;
        }
        this.calls = next;
        break;
      }
      case 'event': {
        const ev = msg.event;
        let c = this.calls[ev.call_sid];
        if (!c) {
          // A call this console does not show starts with its call_created (the snapshot has
          // every live call); anything else is a call that ended and left the board (a link or
          // a review appended to its record): not brought back.
          if (ev.type !== 'call_created') break;
          this.calls[ev.call_sid] = emptyCall();
          c = this.calls[ev.call_sid];
        }
        applyEvent(c, ev);
        for (const cb of this.listeners) cb(ev);
        this.benchEvent(ev.at_ms);
        if (ev.type === 'call_ended') this.endedAt.set(ev.call_sid, Date.now());
        break;
      }
      case 'listening':
        this.listening = { call_sid: msg.call_sid, tracks: msg.tracks };
        break;
      case 'listen_stopped':
        if (this.listening?.call_sid === msg.call_sid) this.listening = null;
        break;
      case 'talking':
      case 'talk_stopped':
        break;
      case 'error':
        actions.show(msg.message, true);
        break;
    }
  }

  private benchPending: number[] = [];

  /** The console benchmark (ui/e2e/bench.mjs) sets `window.__wfBench`: each event's time from
   *  the server to the frame that shows it, and each listen-in frame's arrival, are recorded
   *  there. Off otherwise. */
  private benchEvent(atMs: number) {
    const bench = (globalThis as { __wfBench?: { latencies: number[] } }).__wfBench;
    if (!bench) return;
    if (this.benchPending.push(atMs) === 1) {
      requestAnimationFrame(() => {
        const now = Date.now();
        for (const a of this.benchPending) bench.latencies.push(now - a);
        this.benchPending = [];
      });
    }
  }

  private desktopTimer: ReturnType<typeof setInterval> | null = null;

  /** Desktop listen-in: the app's mixer counts frames played; a missing device is reported. */
  private pollDesktop() {
    if (!desktop || this.desktopTimer) return;
    this.desktopTimer = setInterval(async () => {
      const s = await desktop!.invoke<{ listening: string | null; frames_played: number; device_error: string | null }>('listen_status');
      if (!s.listening) {
        this.listening = null;
        if (this.desktopTimer) clearInterval(this.desktopTimer);
        this.desktopTimer = null;
      }
      this.listenFrames = s.frames_played;
      this.notice = s.device_error;
    }, 500);
  }

  private dropEnded() {
    const now = Date.now();
    for (const [sid, at] of this.endedAt) {
      if (now - at > ENDED_LINGER_MS) {
        this.endedAt.delete(sid);
        delete this.calls[sid];
      }
    }
  }

  /** Per-track listen-in volume, 0–2 (0 mutes): the desk's mixer or Web Audio. */
  async setVolume(track: 'caller' | 'agent', level: number) {
    if (desktop) await desktop.invoke('set_volume', { track, level });
    else this.player.setVolume(track, level);
  }

  /** Stops listening in, whatever call it was (the console locked or signed out). */
  async stopListening() {
    if (!this.listening) return;
    if (desktop) await desktop.invoke('stop_listening').catch(() => {});
    else this.ws?.send(JSON.stringify({ type: 'stop_listening' }));
    this.listening = null;
  }

  /** Listen to a call (caller and agent mixed), or stop if already listening to it. On the
   *  desktop the app plays it through the desk's speakers (rodio); in a browser, Web Audio. */
  async toggleListen(callSid: string) {
    if (desktop) {
      if (this.listening?.call_sid === callSid) {
        await desktop.invoke('stop_listening');
        this.listening = null;
        return;
      }
      try {
        await desktop.invoke('listen', { callId: callSid, tracks: ['caller', 'agent'] });
        this.listening = { call_sid: callSid, tracks: ['caller', 'agent'] };
        this.listenFrames = 0;
        this.pollDesktop();
      } catch (e) {
        this.notice = String(e);
      }
      return;
    }
    if (this.listening?.call_sid === callSid) {
      this.ws?.send(JSON.stringify({ type: 'stop_listening' }));
      this.listening = null;
      this.player.stop();
      return;
    }
    await this.player.start();
    this.listenFrames = 0;
    this.ws?.send(JSON.stringify({ type: 'listen', call_sid: callSid, tracks: ['caller', 'agent'] }));
  }
}

export const feed = new Feed();
