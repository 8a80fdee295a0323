// What the end-to-end scripts share: a free loopback port, sleeping, waiting for a condition,
// named checks that are counted rather than stopping the run, and the WAV work of the voice
// checks (issue 17).

import { createServer } from 'node:net';

/** A port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Throws `msg` unless `cond`. */
export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Polls `fn` every 100 ms until it returns something truthy (returned) or `timeoutMs` passes. */
export async function waitFor(what, fn, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Named checks: each prints ok/FAIL with its time; `failures()` counts the failed ones. */
export function checks() {
  let failed = 0;
  return {
    async check(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed += 1;
        console.log(`FAIL ${name}: ${e?.stack ?? e}`);
      }
    },
    fail(what, e) {
      failed += 1;
      console.log(`FAIL ${what}: ${e?.stack ?? e}`);
    },
    failures: () => failed,
  };
}

/** A mono 16-bit PCM WAV at 8000 Hz holding `samples` (the canonical 44-byte header). */
export function pcmWav(samples) {
  const n = samples.length;
  const wav = Buffer.alloc(44 + n * 2);
  wav.write('RIFF', 0); wav.writeUInt32LE(36 + n * 2, 4); wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22); wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(16000, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34); wav.write('data', 36);
  wav.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) wav.writeInt16LE(samples[i], 44 + i * 2);
  return wav;
}

/** The 16-bit samples (interleaved when stereo) of a WAV the API serves at `url`, signed in with
 * `token`; empty when it is not there (yet). The server writes the canonical 44-byte header. */
export async function fetchWavSamples(url, token) {
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) return new Int16Array(0);
  const b = Buffer.from(await r.arrayBuffer());
  return new Int16Array(b.buffer.slice(b.byteOffset + 44, b.byteOffset + b.length));
}

/** How much of the supervisor's own track (`own`, mono) is on the recording's agent channel
 * (`rec`, stereo: right): its loud samples (|x| > 1000), the share of them identical at the best
 * shift within ±40 ms, that shift (ms), and how many were written there at all. */
export function supervisorOnAgentChannel(own, rec) {
  const loud = [];
  for (let i = 0; i < own.length; i++) if (Math.abs(own[i]) > 1000) loud.push(i);
  let best = { shift: 0, same: 0, written: 0 };
  for (let shift = -320; shift <= 320; shift++) {
    let same = 0;
    let written = 0;
    for (const i of loud) {
      const r = rec[2 * (i + shift) + 1];
      if (r) written++;
      if (r === own[i]) same++;
    }
    if (same > best.same) best = { shift, same, written };
  }
  return { loud: loud.length, share: loud.length ? best.same / loud.length : 0, shift_ms: best.shift / 8, written: best.written };
}
