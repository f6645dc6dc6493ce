"""Live mode on a stream of real commands: how many land in the list of commands heard, in order and right.

    python -m benchmarks.live_stream --data DIR [--model FILE] [--commands 20] [--seed 0] [--rates 16000 8000]

The stream: `--commands` SC10 recordings drawn from DIR's test split (clips of speakers the model heard are
left out, as `training.evaluate` does), each followed by a pause of random length (0.3 to 1.5 s) with a faint
noise floor, sent to the live engine (`app.streaming.LiveSession`) in 0.1 s chunks at 48 kHz, as a browser
microphone delivers them; the engine resamples to each rate and rescales Δ. Reported per rate: entries in the
list, entries that match the spoken sequence in order (longest common subsequence), false entries (the rest),
and the same model's clip-by-clip accuracy on the same recordings, the figure live mode should approach.
Writes benchmarks/results/live-stream-seed<seed>-<date>.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from app.bundle import DEFAULT_MODEL, load_bundle, probabilities, top
from app.streaming import LiveSession
from benchmarks.common import machine, write_json
from training.data.speech_commands import SpeechCommands
from training.evaluation.evaluate import heard_clips
from training.serving import predict_logits, resample

MIC_RATE = 48000
CHUNK_SECONDS = 0.1
PAUSE_SECONDS = (0.3, 1.5)
FLOOR_RMS = 1e-3  # −60 dBFS of white noise between the words: a quiet room, not digital zero


def in_order(spoken: Sequence[str], listed: Sequence[str]) -> int:
    """Length of the longest common subsequence: entries that match what was said, in the order it was said."""
    table = np.zeros((len(spoken) + 1, len(listed) + 1), dtype=int)
    for i, word in enumerate(spoken):
        for j, entry in enumerate(listed):
            table[i + 1, j + 1] = table[i, j] + 1 if word == entry else max(table[i, j + 1], table[i + 1, j])
    return int(table[-1, -1])


def build_stream(dataset: SpeechCommands, indices: Sequence[int], rng: np.random.Generator) -> torch.Tensor:
    """The chosen clips (16 kHz) with random pauses between them and a noise floor → (samples,) at 16 kHz."""
    parts = [torch.zeros(8000)]
    for index in indices:
        parts += [dataset[index][0], torch.zeros(int(rng.uniform(*PAUSE_SECONDS) * 16000))]
    stream = torch.cat(parts)
    return stream + FLOOR_RMS * torch.from_numpy(rng.standard_normal(stream.shape[0]).astype(np.float32))


def run_rate(bundle, clips: list[torch.Tensor], words: list[str], stream: torch.Tensor, rate: int) -> dict:
    """One rate: the clip-by-clip answers, then the stream through a fresh live session."""
    clip_right = 0
    for clip, word in zip(clips, words, strict=True):
        logits = predict_logits(bundle.model, bundle.meta, resample(clip, 16000, rate)[None], rate)[0]
        clip_right += top(probabilities(logits, bundle.classes))[0] == word
    session = LiveSession(bundle, rate, MIC_RATE, "auto")
    mic = resample(stream, 16000, MIC_RATE)
    chunk = int(CHUNK_SECONDS * MIC_RATE)
    start = time.perf_counter()
    for i in range(0, mic.shape[0], chunk):
        session.feed(mic[i : i + chunk])
    session.finish()
    listed = [entry.word for entry in reversed(session.listener.heard)]
    right = in_order(words, listed)
    return {
        "engine": session.using,
        "clip_by_clip_correct": clip_right,
        "utterances": session.listener.closed,
        "listed": listed,
        "in_order_correct": right,
        "false_entries": len(listed) - right,
        "real_time_factor": session.busy / session.heard,
        "wall_s": time.perf_counter() - start,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live_stream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--data", type=Path, required=True, help="Speech Commands folder (its test split is used)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="exported model (default: the bundled one)")
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 8000])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bundle = load_bundle(args.model)
    dataset = SpeechCommands(args.data, "sc10", "test")
    heard = set(heard_clips(bundle.meta, dataset))
    rng = np.random.default_rng(args.seed)
    candidates = [i for i in range(len(dataset)) if i not in heard]
    indices = list(rng.choice(candidates, size=min(args.commands, len(candidates)), replace=False))
    clips = [dataset[i][0] for i in indices]
    words = [dataset.classes[dataset.labels[i]] for i in indices]
    stream = build_stream(dataset, indices, rng)
    results = {str(rate): run_rate(bundle, clips, words, stream, rate) for rate in args.rates}
    for rate, result in results.items():
        print(
            f"{rate} Hz ({result['engine']} engine): {result['in_order_correct']}/{len(words)} in order and right, "
            f"{result['false_entries']} false entries, {result['utterances']} utterances; clip by clip "
            f"{result['clip_by_clip_correct']}/{len(words)}; compute {result['real_time_factor']:.2f}x real time"
        )
    payload = {"model": str(args.model), "data": args.data.name, "split": "test", "seed": args.seed,
               "spoken": words, "excluded_clips": len(heard), "rates": results, "machine": machine()}  # fmt: skip
    print(f"wrote {write_json(f'live-stream-seed{args.seed}', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
