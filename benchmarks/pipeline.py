"""Examples/s of each input pipeline stage alone on the prepared corpora.

    python benchmarks/pipeline.py [--data_root data] [--batches 50] [--smoke]

Stages: decode (soundfile reads of training excerpts), features (log-mel of the
decoded audio), batching (the full SeparationData / AudioData training stream).
Needs `python -m tfaudio.prepare asterisk` and `... mixtures` first.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfaudio.audio import features  # noqa: E402
from tfaudio.audio.compression import LogCompression  # noqa: E402
from tfaudio.audio.geometry import audio_geometry  # noqa: E402
from tfaudio.audio.io import read_audio  # noqa: E402
from tfaudio.data.audio_data import AudioData  # noqa: E402
from tfaudio.data.separation_data import SeparationData  # noqa: E402


def rate(fn, n):
    fn()  # warm-up
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start), n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_root", default="data")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="two batches of two (for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.batches, args.batch_size = 2, 2
    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64", "audio_geometry.n_mels = 40"])
    geometry = audio_geometry()
    sep = SeparationData(data_dir=os.path.join(args.data_root, "mixtures"))
    speech = AudioData(data_dir=os.path.join(args.data_root, "asterisk"), max_seconds=5.0)
    tracks = sep.train_corpus.examples
    n = args.batches * args.batch_size

    def decode():
        for i in range(n):
            read_audio(tracks[i % len(tracks)]["path"], 8000, seconds=1.0)
        return n

    waves = tf.random.normal([args.batch_size, 8000])
    compress = LogCompression()

    def feats():
        for _ in range(args.batches):
            compress(features.mel_spectrogram(waves, geometry)).numpy()
        return n

    def stream(ds):
        def run():
            for _ in ds.take(args.batches):
                pass
            return n
        return run

    rows = [("decode (soundfile, 1 s excerpts)", rate(decode, n)[0]),
            ("features (log-mel, batched)", rate(feats, n)[0]),
            ("SeparationData.train (decode+crop+batch)", rate(stream(sep.train(args.batch_size, 0)), n)[0]),
            ("AudioData.train asterisk (padded batches)", rate(stream(speech.train(args.batch_size, 0)), n)[0])]
    print(f"{'stage':45s} examples/s   (batch {args.batch_size}, {args.batches} batches, "
          f"{os.cpu_count()} cores)")
    for name, value in rows:
        print(f"{name:45s} {value:10.1f}")


if __name__ == "__main__":
    main()
