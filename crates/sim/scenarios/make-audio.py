#!/usr/bin/env python3
"""Makes each scenario's speech as 8 kHz mono G.711 μ-law WAV files with espeak-ng and sox.

Run from anywhere: `python3 crates/sim/scenarios/make-audio.py [name …]` (every scenario, or
the ones named). It writes `audio/<scenario>/greeting.wav`, `caller-NN.wav` and `agent-NN.wav`
next to this script; a turn where the caller presses keys (`keys`) or stays silent (`silent`)
has no caller speech.
The generated files are committed, so tests need neither tool.
Caller and agent use different espeak-ng voices so the two tracks are told apart by ear; a
scenario with `language` set speaks its turns with espeak-ng's voice for that language.
"""
import pathlib
import subprocess
import sys
import tempfile
import tomllib

HERE = pathlib.Path(__file__).resolve().parent
CALLER_VOICE = "en-us+m3"
AGENT_VOICE = "en-us+f3"
# A scenario in another language (`language = "es"`): espeak-ng's voice for it; the greeting
# stays in English (the agent greets in the profile's first language).
VOICES = {"es": ("es-419+m3", "es-419+f3"), "ja": ("ja+m3", "ja+f3")}


def speak(text: str, voice: str, out: pathlib.Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True)
        # Telephone quality: 8 kHz, mono, μ-law, normalised to -3 dBFS peak, with the leading and
        # trailing silence espeak adds trimmed (the caller fake puts its own silence between turns).
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-e", "mu-law", "-b", "8", str(out),
             "norm", "-3", "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"],
            check=True,
        )


def main() -> None:
    wanted = set(sys.argv[1:])
    for path in sorted(HERE.glob("*.toml")):
        scenario = tomllib.loads(path.read_text())
        name = scenario["name"]
        if wanted and name not in wanted:
            continue
        base = HERE / "audio" / name
        caller_voice, agent_voice = VOICES.get(scenario.get("language", "en"), (CALLER_VOICE, AGENT_VOICE))
        speak(scenario["greeting"]["text"], AGENT_VOICE, base / "greeting.wav")
        for i, turn in enumerate(scenario["turns"]):
            # `caller_reading`/`agent_reading`: the text to speak when it differs from the
            # transcript (kana for Japanese: espeak-ng does not read kanji).
            if not turn.get("keys") and not turn.get("silent"):
                speak(turn.get("caller_reading", turn["caller"]), caller_voice, base / f"caller-{i:02}.wav")
            speak(turn.get("agent_reading", turn["agent"]), agent_voice, base / f"agent-{i:02}.wav")
        print(f"{name}: {len(scenario['turns'])} turns")


if __name__ == "__main__":
    main()
