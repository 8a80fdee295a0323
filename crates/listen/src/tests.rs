use std::sync::Arc;

use bytes_like::frame;
use rodio::Source as _;

use super::*;

/// Frames for tests: `codes` of μ-law at `stream_ms` of `track` on call `sid`.
mod bytes_like {
    use super::*;
    pub fn frame(sid: &str, track: Track, stream_ms: u64, codes: &[u8]) -> AudioFrame {
        AudioFrame { call_sid: Arc::from(sid), track, stream_ms, audio: codes.to_vec().into() }
    }
}

/// ITU-T G.711 μ-law decoding, written from the recommendation's table (sign bit, 3-bit
/// segment, 4-bit step; bits inverted on the line), to check the codec the mixer uses.
fn g711_reference(code: u8) -> i16 {
    let c = !code;
    let sign = c & 0x80;
    let segment = (c >> 4) & 0x07;
    let step = c & 0x0F;
    let magnitude = ((i32::from(step) << 3) + 0x84) << segment;
    let v = magnitude - 0x84;
    (if sign != 0 { -v } else { v }) as i16
}

fn pull(src: &mut MixerSource, n: usize) -> Vec<f32> {
    (0..n).map(|_| src.next().expect("endless")).collect()
}

/// A recognisable signal: frame `i` of 160 samples cycles through the codes.
fn codes(i: u64) -> Vec<u8> {
    (0..160u64).map(|k| ((i * 160 + k) % 0x7F) as u8).collect()
}

fn expected(i: u64, k: usize) -> f32 {
    f32::from(mulaw::decode(codes(i)[k])) / 32768.0
}

#[test]
fn mulaw_decoding_is_exact_for_all_256_codes() {
    for code in 0..=255u8 {
        assert_eq!(mulaw::decode(code), g711_reference(code), "code {code:#04x}");
    }
    assert_eq!(mulaw::decode(0xFF), 0, "0xFF is silence");
    assert_eq!(mulaw::decode(0x00), -32124);
    assert_eq!(mulaw::decode(0x80), 32124);
}

#[test]
fn the_source_is_mono_8000_hz_and_silent_when_idle() {
    let m = Mixer::new();
    let mut src = m.source();
    assert_eq!((src.channels().get(), src.sample_rate().get()), (1, 8000));
    assert_eq!(src.total_duration(), None);
    assert!(pull(&mut src, 400).iter().all(|&s| s == 0.0));
    assert!(!m.push(&frame("CA1", Track::Caller, 0, &codes(0))), "not listening: refused");
}

#[test]
fn output_is_continuous_and_exact_under_bursty_input() {
    let m = Mixer::new();
    m.listen("CA1", &[Track::Caller]);
    let mut src = m.source();
    // 200 ms up front, then bursts of 2–8 frames, each arriving ahead of need.
    let mut next_frame = 0u64;
    let push = |n: u64, next: &mut u64| {
        for _ in 0..n {
            assert!(m.push(&frame("CA1", Track::Caller, *next * 20, &codes(*next))));
            *next += 1;
        }
    };
    push(10, &mut next_frame);
    let mut out = Vec::new();
    for burst in [5u64, 2, 8, 3, 6, 5, 4, 7, 5, 5] {
        out.extend(pull(&mut src, 800)); // 100 ms played
        push(burst, &mut next_frame);
    }
    assert_eq!(m.stats().underruns, 0);
    // After the 5 ms fade-in, every sample is the input's, in order: no gap, no repeat.
    for (n, &s) in out.iter().enumerate().skip(RAMP_SAMPLES as usize) {
        let (i, k) = ((n / 160) as u64, n % 160);
        assert_eq!(s, expected(i, k), "sample {n}");
    }
    assert_eq!(m.stats().frames_played, 49, "frames played through to their end");
}

#[test]
fn a_dry_buffer_fades_out_waits_for_the_target_and_fades_in() {
    let m = Mixer::new();
    m.listen("CA1", &[Track::Caller]);
    let mut src = m.source();
    for i in 0..4 {
        m.push(&frame("CA1", Track::Caller, i * 20, &[0x80; 160]));
    }
    let out = pull(&mut src, 1200);
    assert_eq!(m.stats().underruns, 1);
    // Fades to silence at the end of the 80 ms, never a step from full level to zero.
    for w in out.windows(2) {
        assert!((w[0] - w[1]).abs() <= 1.0 / RAMP_SAMPLES as f32 + 1e-6, "a click: {} → {}", w[0], w[1]);
    }
    assert!(out[640..].iter().all(|&s| s == 0.0));
    // New audio: nothing until 60 ms are buffered again.
    for i in 4..6 {
        m.push(&frame("CA1", Track::Caller, i * 20, &[0x80; 160]));
    }
    assert!(pull(&mut src, 80).iter().all(|&s| s == 0.0), "40 ms buffered < 60 ms target");
    m.push(&frame("CA1", Track::Caller, 120, &[0x80; 160]));
    let out = pull(&mut src, 400);
    assert!(out[RAMP_SAMPLES as usize..200].iter().all(|&s| s > 0.9));
}

#[test]
fn caller_and_agent_are_mixed_at_the_same_stream_position() {
    let m = Mixer::new();
    m.listen("CA1", &[Track::Caller, Track::Agent]);
    let mut src = m.source();
    // The caller's frames, 0–200 ms; the agent's frame for 100–120 ms arrives later (it was
    // published when Twilio confirmed it played) but before its place is reached.
    for i in 0..10 {
        m.push(&frame("CA1", Track::Caller, i * 20, &[0xC0; 160]));
    }
    let first = pull(&mut src, 400);
    assert!(m.push(&frame("CA1", Track::Agent, 100, &[0x40; 160])));
    let rest = pull(&mut src, 800);
    let out: Vec<f32> = first.into_iter().chain(rest).collect();
    let (c, a) = (f32::from(mulaw::decode(0xC0)) / 32768.0, f32::from(mulaw::decode(0x40)) / 32768.0);
    assert_eq!(out[700], c, "caller alone at 87.5 ms");
    assert_eq!(out[800], c + a, "both at 100 ms, in step");
    assert_eq!(out[959], c + a);
    assert_eq!(out[960], c, "the agent's 20 ms ended at 120 ms");
}

#[test]
fn a_late_agent_frame_grows_the_delay_so_the_next_ones_play_in_step() {
    let m = Mixer::new();
    m.listen("CA1", &[Track::Caller, Track::Agent]);
    let mut src = m.source();
    let mut t = 0u64;
    // Caller audio flows in real time; agent frames arrive 120 ms after their place.
    let mut out = Vec::new();
    let mut agent_pushed = Vec::new();
    for step in 0..60u64 {
        m.push(&frame("CA1", Track::Caller, t, &[0xFF; 160]));
        if step >= 6 {
            let at = t - 120;
            agent_pushed.push((at, m.push(&frame("CA1", Track::Agent, at, &[0x40; 160]))));
        }
        t += 20;
        out.extend(pull(&mut src, 160));
    }
    let s = m.stats();
    assert!(s.late_frames >= 1, "{s:?}");
    assert!(s.delay_ms >= 120 && s.delay_ms <= MAX_DELAY_MS, "{s:?}");
    // Once the delay has grown, agent frames are taken and heard.
    let taken_late = agent_pushed.iter().rev().take(20).all(|(_, ok)| *ok);
    assert!(taken_late, "{agent_pushed:?}");
    let agent_level = f32::from(mulaw::decode(0x40)) / 32768.0;
    assert!(out.iter().rev().take(1600).filter(|&&v| (v - agent_level).abs() < 1e-6).count() > 1000, "the agent is heard");
}

#[test]
fn switching_calls_leaves_no_stale_audio() {
    let m = Mixer::new();
    m.listen("CA1", &[Track::Caller, Track::Agent]);
    let mut src = m.source();
    for i in 0..10 {
        m.push(&frame("CA1", Track::Caller, i * 20, &[0x80; 160]));
    }
    assert!(pull(&mut src, 400).iter().skip(RAMP_SAMPLES as usize).all(|&s| s > 0.9));
    m.listen("CA2", &[Track::Caller]);
    assert_eq!(m.listening().as_deref(), Some("CA2"));
    assert!(!m.push(&frame("CA1", Track::Caller, 200, &[0x80; 160])), "the old call is refused");
    assert!(!m.push(&frame("CA2", Track::Agent, 0, &[0x80; 160])), "a track not listened to is refused");
    // The source may hold at most one refill of the old call (10 ms).
    let out = pull(&mut src, 800);
    assert!(out[REFILL_SAMPLES..].iter().all(|&s| s == 0.0), "nothing of CA1 after the switch");
    for i in 0..4 {
        m.push(&frame("CA2", Track::Caller, 5000 + i * 20, &[0x00; 160]));
    }
    let out = pull(&mut src, 400);
    assert!(out.iter().any(|&s| s < -0.9), "CA2 plays");
    m.stop();
    assert_eq!(m.listening(), None);
}

#[test]
fn volume_and_mute_per_track() {
    let m = Mixer::new();
    m.listen("CA1", &[Track::Caller, Track::Agent]);
    m.set_volume(Track::Caller, 0.5);
    m.set_muted(Track::Agent, true);
    let mut src = m.source();
    for i in 0..10 {
        m.push(&frame("CA1", Track::Caller, i * 20, &[0xC0; 160]));
        m.push(&frame("CA1", Track::Agent, i * 20, &[0x40; 160]));
    }
    let out = pull(&mut src, 800);
    assert_eq!(out[400], 0.5 * f32::from(mulaw::decode(0xC0)) / 32768.0);
    m.set_muted(Track::Agent, false);
    m.set_volume(Track::Caller, 9.0);
    let out = pull(&mut src, 80);
    assert_eq!(out[0], (2.0 * f32::from(mulaw::decode(0xC0)) / 32768.0 + f32::from(mulaw::decode(0x40)) / 32768.0).clamp(-1.0, 1.0), "volume capped at 2");
}

#[test]
fn a_stalled_desk_skips_ahead_instead_of_playing_old_audio() {
    let m = Mixer::new();
    m.listen("CA1", &[Track::Caller]);
    let mut src = m.source();
    // 3 s arrive while nothing is pulled.
    for i in 0..150u64 {
        m.push(&frame("CA1", Track::Caller, i * 20, &codes(i)));
    }
    let out = pull(&mut src, 80);
    // It plays from 60 ms before the newest audio: frame 147, sample 0 is 2940 ms.
    let n = RAMP_SAMPLES as usize + 1;
    let pos = 2940 * 8 + n as u64;
    assert_eq!(out[n], expected(pos / 160, (pos % 160) as usize));
}

proptest::proptest! {
    /// Whatever the order and lateness of frames, the mixer never panics, output stays in
    /// [-1, 1], and the counters add up.
    #[test]
    fn any_arrival_order_is_safe(arrivals in proptest::collection::vec((0u64..200, proptest::bool::ANY, 1usize..320, 0usize..400), 1..80)) {
        let m = Mixer::new();
        m.listen("CA1", &[Track::Caller, Track::Agent]);
        let mut src = m.source();
        let mut pushed = 0u64;
        for (slot, agent, len, pull_n) in arrivals {
            let track = if agent { Track::Agent } else { Track::Caller };
            m.push(&frame("CA1", track, slot * 20, &vec![0x00; len]));
            pushed += 1;
            for s in pull(&mut src, pull_n) {
                proptest::prop_assert!((-1.0..=1.0).contains(&s));
            }
        }
        let st = m.stats();
        proptest::prop_assert!(st.late_frames <= pushed);
        proptest::prop_assert!(st.delay_ms <= MAX_DELAY_MS);
    }
}
