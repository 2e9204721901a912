"""Text-to-speech with Tacotron (attention, tfaudio.models.tacotron) or DurationTacotron
(durations, tfaudio.models.duration_tacotron): features, losses, metrics, synthesis.

Targets (tfaudio.tasks.tts_spectra) are log mel (and log linear) spectrograms through the guarded
`LogCompression`, normalised per channel with statistics computed once over the
training set (saved in every checkpoint and in `feature_stats.json`). Padding
takes the normalised floor value, which is also the go frame, and is masked.

Alignment metrics, per example (reported teacher-forced and, with prefix
`free_`, free-running from the go frame):
- focus_rate: mean over decoder steps of the largest attention weight;
- diagonal_mass: attention mass within `band` of the diagonal, where decoder
  step t of T and character n of N sit at t/T and n/N;
- monotone: fraction of consecutive argmax moves that go forward by 0 to
  `max_jump` characters;
- mel_l1: teacher-forced L1 between the post-net mel and the target (normalised units;
  for DurationTacotron, the mel made with the durations the alignment search found);
- free_mcd: mel cepstral distortion in dB (tfaudio.audio.distortion) between the
  free-running mel and the real recording's, after dynamic time warping;
- free_length_ratio: free-running frames over the recording's frames;
- free_stopped: 1 when the stop token ended decoding before the bound;
- free_aligned: 1 when it stopped, moved monotonically (monotone >= 0.9) and its
  attention reached the last 20% of the text.
"""

from __future__ import annotations

import math
import os

import gin
import numpy as np
import tensorflow as tf

from tfaudio.audio.compression import LogCompression
from tfaudio.audio.distortion import mel_cepstral_distortion
from tfaudio.audio.geometry import audio_geometry
from tfaudio.audio.images import plot
from tfaudio.data.text import PhonemeVocabulary
from tfaudio.data.text import vocabulary as default_vocabulary
from tfaudio.limits import COUNT, NON_NEGATIVE, NYQUIST, POSITIVE, POSITIVE_INT, PROPORTION, UNIT, Choice, Range, limits
from tfaudio.models.tacotron import ENDED_BY
from tfaudio.models.tracing import traced_method
from tfaudio.tasks.alignment import alignment_metrics, decoder_consistency, forward_sum_loss, guided_attention_weights
from tfaudio.tasks.base import Task
from tfaudio.tasks.tts_spectra import Spectra

_LOSSES = {"l1": tf.abs, "l2": tf.square}


def _masked_mean(x, mask):
    """Mean over all but the batch axis of x [B, T, C] where mask [B, T] is true; per example."""
    m = tf.cast(mask, x.dtype)[..., None]
    return tf.reduce_sum(x * m, [1, 2]) / tf.maximum(tf.reduce_sum(m, [1, 2]) * tf.cast(tf.shape(x)[-1], x.dtype),
                                                     1.0)


def _batch_mcd(free_mel, free_frames, real_mel, real_frames):
    """MCD [B] between each free-running log mel and its recording's (numpy, for metrics)."""
    return np.array([mel_cepstral_distortion(a[:n], b[:m]) for a, n, b, m in
                     zip(free_mel, free_frames, real_mel, real_frames)], np.float32)


@gin.configurable
@limits(stats_examples=POSITIVE_INT, spectrum_loss=Choice(*_LOSSES),
        priority_hz=Range(0, NYQUIST, low_open=True, none=True), priority_weight=UNIT, stop_weight=NON_NEGATIVE,
        stop_pos_weight=POSITIVE, guided_weight=NON_NEGATIVE, forward_sum_weight=NON_NEGATIVE, ddc_weight=NON_NEGATIVE,
        guided_sigma=POSITIVE, max_decoder_steps=POSITIVE_INT, duration_weight=NON_NEGATIVE,
        stop_threshold=POSITIVE, end_margin_seconds=NON_NEGATIVE.or_none(),
        window=POSITIVE_INT.or_none(), band=PROPORTION, max_jump=POSITIVE_INT, griffin_lim_iterations=COUNT,
        griffin_lim_power=POSITIVE)
class TacotronTask(Task):
    """Losses, metrics and synthesis for `tfaudio.models.tacotron.Tacotron` (attention) and
    `tfaudio.models.duration_tacotron.DurationTacotron` (durations). Both give `reduction`
    (frames per decoder step), `predicts_linear`, `autoregressive`, `call(inputs)` and
    `infer(text_ids, text_length, max_steps, **decoding)` (`decoding`: the options of an
    autoregressive model); the outputs say which losses apply ("log_durations" or "stop_logits").

    Args:
      vocabulary: the text front end (must match the data's AudioData.text_encoder).
      log_compression: LogCompression for the spectrogram targets (floor 1e-5, natural log).
      normalize_stats: normalise targets by per-channel training-set mean and std.
      stats_examples: training examples used to compute those statistics.
      spectrum_loss: "l1" or "l2" on mel (before and after the post-net) and linear.
      priority_hz, priority_weight: the linear loss is (1 - w) * all bins + w * the
        bins below priority_hz (Tacotron 1's low-frequency priority); None disables it.
      stop_weight, stop_pos_weight: stop-token BCE weight and the weight of its
        positive (stop) targets.
      duration_weight: weight of the log-duration loss of a model with durations instead of
        attention (DurationTacotron; its prior loss, the symbols' means against the recording on
        the searched alignment, has weight 1; stop and guided losses apply to attention only).
      guided_weight, guided_sigma: guided-attention loss. It is summed over characters
        and averaged over valid decoder steps, so at weight 1 it is of the order of the
        mel loss (averaged over all cells it would be ~50x smaller and do nothing).
      forward_sum_weight: weight of the forward-sum loss on the attention (Badlani et al.
        2021): -log of the summed probability of every monotonic path through the
        attention weights that visits each character in order, per decoder step (0: off,
        and not computed). A decoder shorter than its text has no such path: its term is
        0 rather than infinite.
      ddc_weight: with Tacotron.coarse_reduction (double decoder consistency), the weight
        of the coarse decoder's mel loss plus the L1 distance between the two decoders'
        alignments (tfaudio.tasks.alignment.decoder_consistency).
      max_decoder_steps: bound on free-running decoding (decoder steps; frames for DurationTacotron).
      stop_threshold: stop probability that ends free-running decoding (above 1: never).
      end_margin_seconds: synthesis (not the free_* metrics, which judge the stop token
        alone) also ends this long after the attention reached the last character having
        covered the text (tfaudio.models.tacotron.END_COVERAGE), in case the stop token
        does not fire; None disables the fallback.
      window: synthesis (not the free_* metrics) attends only from one character behind
        the previous attention peak to `window` characters ahead, so it cannot jump back
        and repeat words; None lets attention go anywhere.
      band, max_jump: alignment-metric parameters (see the module docstring).
      griffin_lim_iterations, griffin_lim_power: spectrogram-to-audio inversion; the output
        is brought back to the predicted level and kept below clipping. Power 1.0: on 20
        held-out asterisk prompts the ground-truth-mel resynthesis is recognised 14/20 times
        (1.5: 10/20) by benchmarks/tts_intelligibility.py's listener.
    """

    def __init__(self, vocabulary=None, log_compression=None, normalize_stats: bool = True,
                 stats_examples: int = 512, spectrum_loss: str = "l1", priority_hz: float | None = None,
                 priority_weight: float = 0.5, stop_weight: float = 1.0, stop_pos_weight: float = 5.0,
                 guided_weight: float = 1.0, guided_sigma: float = 0.2, forward_sum_weight: float = 0.0,
                 ddc_weight: float = 1.0,
                 max_decoder_steps: int = 500,
                 duration_weight: float = 1.0, stop_threshold: float = 0.5,
                 end_margin_seconds: float | None = 0.15, window: int | None = 3, band: float = 0.2, max_jump: int = 3,
                 griffin_lim_iterations: int = 60, griffin_lim_power: float = 1.0):
        self.geometry = audio_geometry()
        self.vocabulary = vocabulary or default_vocabulary()
        self.stats_examples = stats_examples
        self.spectrum_loss = _LOSSES[spectrum_loss]
        self.priority_bins = (None if priority_hz is None else
                              max(1, int(priority_hz / (self.geometry.sample_rate / 2) * self.geometry.n_bins)))
        self.priority_weight = priority_weight
        self.stop_weight, self.stop_pos_weight = stop_weight, stop_pos_weight
        self.duration_weight = duration_weight
        self.guided_weight, self.guided_sigma = guided_weight, guided_sigma
        self.forward_sum_weight, self.ddc_weight = forward_sum_weight, ddc_weight
        self.max_decoder_steps, self.stop_threshold = max_decoder_steps, stop_threshold
        self.end_margin_seconds, self.window = end_margin_seconds, window
        self.band, self.max_jump = band, max_jump
        self.spectra = Spectra(self.geometry, log_compression or LogCompression(), normalize_stats,
                               griffin_lim_iterations, griffin_lim_power)
        self.state = self.spectra.state

    def infer(self, model, text_ids, text_length, max_steps):
        """Synthesis: `model.infer` with the decoding options of synthesis, traced once per
        model (any batch or length)."""
        return traced_method(model, "infer")(text_ids, text_length, max_steps=tf.constant(max_steps),
                                             **self.decoding(model, synthesis=True))

    def decoding(self, model, synthesis: bool) -> dict:
        """`model.infer`'s decoding options: for an autoregressive model the go frame and the
        stop threshold, and for synthesis (not the free_* metrics, which judge the stop
        token alone) the end fallback and the attention window; none for a durations model."""
        if not model.autoregressive:
            return {}
        options = dict(go_frame=self.spectra.go_frame, stop_threshold=self.stop_threshold)
        if synthesis:
            options.update(end_margin=self.end_margin(model), window=self.window)
        return options

    def end_margin(self, model) -> int | None:
        """end_margin_seconds in decoder steps of `model` (each emits `reduction` frames)."""
        if self.end_margin_seconds is None:
            return None
        frames = self.end_margin_seconds * self.geometry.sample_rate / self.geometry.hop_length
        return max(1, math.ceil(frames / model.reduction))

    # ------------------------------------------------------------------ features

    def initialize(self, data, model_dir: str):
        """The targets' normalisation statistics, from the training data (once per run)."""
        self.spectra.compute_statistics(data, self.stats_examples, model_dir)

    # ------------------------------------------------------------------ losses

    def teacher_forced_inputs(self, batch, model):
        """(the model's inputs for a teacher-forced call on `batch`, and the normalised mel and
        linear targets, valid frames and frame mask of `Spectra.targets`)."""
        mel, linear, frames, mask = self.spectra.targets(batch, model.reduction)
        inputs = {"text_ids": batch["text_ids"], "text_length": batch["text_length"],
                  "go_frame": self.spectra.go_frame, "targets": mel, "frames": frames}
        return inputs, mel, linear, frames, mask

    def _terms(self, out, mel, linear, frames, mask, text_length, reduction):
        terms = {"mel": _masked_mean(self.spectrum_loss(out["mel"] - mel), mask),
                 "mel_post": _masked_mean(self.spectrum_loss(out["mel_post"] - mel), mask)}
        if "linear" in out:
            diff = self.spectrum_loss(tf.cast(out["linear"], tf.float32) - linear)
            terms["linear"] = _masked_mean(diff, mask)
            if self.priority_bins:
                terms["linear"] = ((1 - self.priority_weight) * terms["linear"] + self.priority_weight
                                   * _masked_mean(diff[..., :self.priority_bins], mask))
        total = terms["mel"] + terms["mel_post"] + terms.get("linear", 0.0)
        dec_len = (frames + reduction - 1) // reduction
        if "log_durations" in out:  # durations instead of attention (DurationTacotron)
            symbols = tf.sequence_mask(text_length, tf.shape(out["log_durations"])[1])
            terms["prior"] = _masked_mean(tf.square(tf.cast(out["prior"], tf.float32) - mel), mask)
            searched = tf.math.log1p(tf.cast(out["durations"], tf.float32))
            error = tf.square(tf.cast(out["log_durations"], tf.float32) - searched)
            terms["duration"] = _masked_mean(error[..., None], symbols)
            terms["forward_sum"] = forward_sum_loss(out["log_attention"], frames, text_length, dense=self.xla)
            total += terms["prior"] + self.duration_weight * terms["duration"] + terms["forward_sum"]
            return total, terms, dec_len
        steps = tf.shape(out["stop_logits"])[1]
        stop_target = tf.cast(tf.range(steps)[None, :] >= dec_len[:, None] - 1, tf.float32)
        bce = tf.nn.weighted_cross_entropy_with_logits(stop_target, tf.cast(out["stop_logits"], tf.float32),
                                                       self.stop_pos_weight)
        terms["stop"] = tf.reduce_mean(bce, 1)
        weights = guided_attention_weights(dec_len, text_length, steps, tf.shape(out["alignments"])[2],
                                           self.guided_sigma)
        terms["guided"] = (tf.reduce_sum(out["alignments"] * weights, [1, 2])
                           / tf.cast(tf.maximum(dec_len, 1), tf.float32))
        total += self.stop_weight * terms["stop"] + self.guided_weight * terms["guided"]
        if self.forward_sum_weight:
            log_attention = tf.math.log(tf.maximum(tf.cast(out["alignments"], tf.float32), 1e-8))
            # Without a path the CTC loss is infinite and its gradient NaN even where zeroed:
            # such examples are scored on their first character instead, then dropped.
            feasible = dec_len >= text_length
            paths = forward_sum_loss(log_attention, dec_len, tf.where(feasible, text_length, 1), dense=self.xla)
            terms["forward_sum"] = tf.where(feasible, paths, 0.0)
            total += self.forward_sum_weight * terms["forward_sum"]
        if "coarse_mel" in out:  # double decoder consistency (Tacotron.coarse_reduction)
            terms["coarse_mel"] = _masked_mean(self.spectrum_loss(out["coarse_mel"] - mel), mask)
            terms["ddc"] = decoder_consistency(out["alignments"], out["coarse_alignments"], dec_len)
            total += self.ddc_weight * (terms["coarse_mel"] + terms["ddc"])
        return total, terms, dec_len

    def loss(self, model, batch, training):
        inputs, mel, linear, frames, mask = self.teacher_forced_inputs(batch, model)
        out = model(inputs, training=training)
        total, terms, _ = self._terms(out, mel, linear, frames, mask, batch["text_length"], model.reduction)
        return total, terms

    def metrics(self, model, batch):
        inputs, mel, linear, frames, mask = self.teacher_forced_inputs(batch, model)
        out = model(inputs, training=False)
        total, terms, dec_len = self._terms(out, mel, linear, frames, mask, batch["text_length"], model.reduction)
        result = {"loss": total, **terms, "mel_l1": _masked_mean(tf.abs(out["mel_post"] - mel), mask)}
        result.update(alignment_metrics(out["alignments"], dec_len, batch["text_length"], self.band,
                                        self.max_jump))
        bound = tf.minimum(self.max_decoder_steps, 2 * tf.shape(mel)[1] // model.reduction + 10)
        free = model.infer(batch["text_ids"], batch["text_length"], max_steps=bound,
                           **self.decoding(model, synthesis=False))
        free_align = alignment_metrics(free["alignments"], free["steps"], batch["text_length"], self.band,
                                       self.max_jump)
        stopped = tf.cast(free["steps"] < bound, tf.float32)
        aligned = stopped * tf.cast((free_align["monotone"] >= 0.9) & (free_align["coverage"] >= 0.8), tf.float32)
        result.update({f"free_{k}": v for k, v in free_align.items()})
        result.update(free_stopped=stopped, free_aligned=aligned,
                      free_length_ratio=tf.cast(free["steps"], tf.float32) / tf.cast(dec_len, tf.float32))
        result.update({"host/free_log_mel": self.spectra.log_mel(free["mel_post"]),
                       "host/free_frames": free["steps"] * model.reduction,
                       "host/log_mel": self.spectra.log_mel(mel), "host/frames": frames})
        return result

    def host_metrics(self, values):
        """free_mcd [B]: MCD between each free-running mel and its recording's (numpy)."""
        return {"free_mcd": _batch_mcd(values["free_log_mel"], values["free_frames"], values["log_mel"],
                                       values["frames"])}

    # ------------------------------------------------------------------ inference

    def build_for_inference(self, model):
        model({"text_ids": tf.constant([[3, self.vocabulary.end_id]]), "text_length": tf.constant([2]),
               "go_frame": self.spectra.go_frame, "targets": tf.zeros([1, 2 * model.reduction, self.geometry.n_mels]),
               "frames": tf.constant([2 * model.reduction])})

    def to_audio(self, out: dict, index: int, frames: int) -> np.ndarray:
        """Waveform of example `index` (its first `frames` frames) by Griffin-Lim: from the
        linear prediction when the model has one, else from the mel by least squares."""
        linear = "linear" in out
        return self.spectra.to_audio(out["linear" if linear else "mel_post"][index, :frames], linear).numpy()

    def export_endpoints(self, model) -> dict:
        linear = model.predicts_linear

        def synthesize(text_ids, text_length):
            out = model.infer(text_ids, text_length, max_steps=tf.constant(self.max_decoder_steps),
                              **self.decoding(model, synthesis=True))
            return {"spectrum": out["linear" if linear else "mel_post"], "alignment": out["alignments"],
                    "frames": out["steps"] * model.reduction}

        def to_audio(spectrum):
            return {"audio": self.spectra.to_audio(spectrum, linear)}
        bins = self.geometry.n_bins if linear else self.geometry.n_mels
        return {"synthesize": (synthesize, [tf.TensorSpec([None, None], tf.int32, name="text_ids"),
                                            tf.TensorSpec([None], tf.int32, name="text_length")]),
                "to_audio": (to_audio, [tf.TensorSpec([None, bins], tf.float32, name="spectrum")])}

    def export_assets(self, model, run_dir: str, out_dir: str) -> list[str]:
        """vocabulary.txt: one symbol per line, its line number its id (the end id is
        the second line; the text is normalised first, see tfaudio.data.text)."""
        with open(os.path.join(out_dir, "vocabulary.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(self.vocabulary.symbols) + "\n")
        return ["vocabulary.txt"]

    def alignment_axes(self, model) -> dict:
        """Axis labels of an alignment picture: decoder steps (or frames) against symbols."""
        return {"xlabel": f"decoder step ({model.reduction} frames)" if model.reduction > 1 else "frame",
                "ylabel": "phoneme" if isinstance(self.vocabulary, PhonemeVocabulary) else "character"}

    def synthesize(self, model, texts: list[str], max_steps: int | None = None):
        """[(wave, alignment [steps, chars], ended_by)] for each text, decoded free-running;
        ended_by names the rule that ended it (tfaudio.models.tacotron.ENDED_BY)."""
        ids = [self.vocabulary.encode(t, "--text") for t in texts]
        length = tf.constant([len(i) for i in ids])
        padded = tf.constant([i + [0] * (max(map(len, ids)) - len(i)) for i in ids])
        bound = max_steps or self.max_decoder_steps
        out = self.infer(model, padded, length, bound)
        results = []
        for k, n in enumerate(out["steps"].numpy()):
            wave = self.to_audio(out, k, int(n) * model.reduction)
            results.append((wave, out["alignments"][k, :n, :len(ids[k])].numpy(),
                            ENDED_BY[int(out["ended_by"][k])]))
        return results

    def summaries(self, model, batch, trackers, step):
        """Alignment and spectrogram images, teacher-forced and free-running, and the
        free-running audio of the first validation example."""
        first = tf.nest.map_structure(lambda x: x[:1], batch)
        inputs, mel, _, frames, _ = self.teacher_forced_inputs(first, model)
        out = model(inputs, training=False)
        n_steps = (int(frames[0]) + model.reduction - 1) // model.reduction
        chars = int(first["text_length"][0])
        free = self.infer(model, first["text_ids"], first["text_length"],
                          min(self.max_decoder_steps, 2 * n_steps + 10))
        free_steps = int(free["steps"][0])
        ids = first["text_ids"][0, :chars].numpy().tolist()
        text = self.vocabulary.decode(ids)
        align = dict(**self.alignment_axes(model), yticklabels=[self.vocabulary.symbols[i] for i in ids])
        mel_axes = dict(xlabel="frame", ylabel="mel channel")
        trackers.image(step, "alignment/teacher_forced",
                       plot(out["alignments"][0, :n_steps, :chars], f"teacher-forced: {text}", **align))
        trackers.image(step, "alignment/free_running",
                       plot(free["alignments"][0, :free_steps, :chars], f"free-running: {text}", **align))
        trackers.image(step, "mel/target", plot(mel[0, :int(frames[0])], f"recording: {text}", **mel_axes))
        trackers.image(step, "mel/teacher_forced",
                       plot(out["mel_post"][0, :int(frames[0])], f"teacher-forced: {text}", **mel_axes))
        trackers.image(step, "mel/free_running",
                       plot(free["mel_post"][0, :free_steps * model.reduction], f"free-running: {text}", **mel_axes))
        if "linear" in out:
            trackers.image(step, "linear/teacher_forced", plot(out["linear"][0, :int(frames[0])],
                                                               f"teacher-forced: {text}", "frame", "bin"))
        trackers.audio(step, "audio/free_running", self.to_audio(free, 0, free_steps * model.reduction),
                       self.geometry.sample_rate)

