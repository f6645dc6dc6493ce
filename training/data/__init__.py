"""Clips in: Speech Commands folders, their splits, and generated speech in the same layout.

    speech_commands  class lists (SC10, SC12, SC35), splits, the `SpeechCommands` dataset, `python -m training.data`
    clip_index       a folder's description (manifest.json) and its cached index of clip lengths
    download         the official archive: resumable, checked, extracted safely
    augment          speed, shift, noise and gain of a training clip; mixup; noise at a fixed SNR for evaluation
    tts, effects     text-to-speech engines and voices; the effects and noise that vary a generated clip
    synth            a Speech Commands look-alike from text-to-speech (`python -m training.synth`)

Imports: `training.common` only. Nothing here knows how a model is trained, judged or served.

    from training.data import SpeechCommands
    clips = SpeechCommands("data/sc10-synth", subset="sc10", split="test")  # (waveform (16000,), label, path)
"""

from training.data.speech_commands import SC10_CLASSES, SC12_CLASSES, SC35_CLASSES, SpeechCommands

__all__ = ["SC10_CLASSES", "SC12_CLASSES", "SC35_CLASSES", "SpeechCommands"]
