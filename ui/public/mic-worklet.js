// The supervisor's microphone on an 8 kHz AudioContext (the browser resamples the device to
// it): each render quantum (128 samples, 16 ms) is handed to the main thread, which cuts 20 ms
// frames and encodes them as μ-law (src/lib/voice.svelte.ts). Served from the console's own
// origin: the Content-Security-Policy allows no blob: workers.
class MicFrames extends AudioWorkletProcessor {
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) this.port.postMessage(ch.slice(0));
    return true;
  }
}
registerProcessor('mic-frames', MicFrames);
