"""The fast sampler computes the model's function, honours temperatures, seeds and RNG seeds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.runtime.envelope import Env
from workers.samplernn.config import SampleRNNConfig
from workers.samplernn.generate import Sampler, generate_audio, output_length, temperature_matrix
from workers.samplernn.model import SampleRNN


def tiny_model(rnn_type: str = "gru", skip_conn: bool = False, seed: int = 0) -> SampleRNN:
    torch.manual_seed(seed)
    config = SampleRNNConfig(seq_len=64, frame_sizes=(8, 32), dim=24, rnn_type=rnn_type,
                             num_rnn_layers=2, q_type="linear", q_levels=64, emb_size=8,
                             skip_conn=skip_conn, sample_rate=8000)
    return SampleRNN(config).eval()


@pytest.mark.parametrize("rnn_type,skip_conn", [("gru", False), ("lstm", False), ("gru", True),
                                                ("lstm", True)])
def test_stepped_network_equals_teacher_forcing(rnn_type: str, skip_conn: bool) -> None:
    model = tiny_model(rnn_type, skip_conn)
    q = np.random.default_rng(1).integers(0, 64, size=(3, 32 * 5))
    with torch.no_grad():
        expected, _ = model(torch.from_numpy(q))
    stepped = Sampler(model, "fp32").teacher_forced_logits(q)
    np.testing.assert_allclose(stepped, expected.numpy(), atol=1e-4, rtol=0)


def test_near_zero_temperature_is_greedy_decoding() -> None:
    model = tiny_model()
    q = Sampler(model).sample(256, np.full((2, 1), 1e-5), rng_seed=0)
    full = np.concatenate([np.full((2, 32), 32), q], axis=1)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(full))
    chosen = np.take_along_axis(logits.numpy(), q[..., None], -1)[..., 0]
    # Gumbel noise ~ O(10) divided by 1e5: only near-ties may pick a non-maximal class.
    assert (logits.numpy().max(-1) - chosen).max() < 1e-3


def test_batch_rows_get_their_own_temperature() -> None:
    model = tiny_model()
    n = 512
    q = Sampler(model).sample(n, np.array([[1e-5], [3.0]]), rng_seed=0)
    full = np.concatenate([np.full((2, 32), 32), q], axis=1)
    with torch.no_grad():
        greedy = model(torch.from_numpy(full))[0].argmax(-1).numpy()
    assert (q[0] == greedy[0]).mean() > 0.99
    assert (q[1] == greedy[1]).mean() < 0.5


def test_envelope_temperature_changes_within_a_sequence() -> None:
    model = tiny_model()
    n = 1024
    temps = temperature_matrix([Env((1e-5, 1e-5, 3.0), (n / 2 / 8000, 0.0), (0.0, 0.0))], n, 8000)
    q = Sampler(model).sample(n, temps, rng_seed=0)
    full = np.concatenate([np.full((1, 32), 32), q], axis=1)
    with torch.no_grad():
        greedy = model(torch.from_numpy(full))[0].argmax(-1).numpy()[0]
    assert (q[0, : n // 2] == greedy[: n // 2]).mean() > 0.99
    assert (q[0, n // 2:] == greedy[n // 2:]).mean() < 0.5


def test_temperature_matrix_evaluates_envelopes_per_sample() -> None:
    sr = 10
    env = Env((0.7, 1.05), (4.0,), (-2.0,))
    temps = temperature_matrix([0.8, env, Env((0.8, 1.0, 0.7), (2.0, 2.0), (0.0, 0.0))], 50, sr)
    assert temps.shape == (3, 50)
    assert np.all(temps[0] == 0.8)
    # SuperCollider curve: a + (b - a) * (1 - exp(c x)) / (1 - exp(c)); at 2 s x = 0.5, c = -2.
    assert temps[1, 0] == pytest.approx(0.7)
    assert temps[1, 20] == pytest.approx(0.7 + 0.35 * (1 - np.exp(-1.0)) / (1 - np.exp(-2.0)))
    assert temps[1, 45] == pytest.approx(1.05)  # after the envelope: last level held
    assert temps[2, 10] == pytest.approx(0.9)  # linear halfway up the first segment
    assert temps[2, 30] == pytest.approx(0.85)  # halfway down the second
    assert temperature_matrix([0.8, 1.0], 50, sr).shape == (2, 1)
    with pytest.raises(ValueError, match="positive"):
        temperature_matrix([0.0], 10, sr)


def test_same_rng_seed_same_audio_and_seed_audio_primes() -> None:
    model = tiny_model()
    with torch.no_grad():  # a fresh model barely listens to its RNN states; make it listen
        model.frame_rnn.upsample.weight.mul_(30.0)
        model.big_frame_rnn.upsample.weight.mul_(10.0)
    sampler = Sampler(model)
    temps = np.ones((2, 1))
    a = generate_audio(sampler, 600, temps, rng_seed=7)
    b = generate_audio(sampler, 600, temps, rng_seed=7)
    c = generate_audio(sampler, 600, temps, rng_seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    t = np.arange(4000) / 8000
    seed = [0.6 * np.sin(2 * np.pi * 440 * t), 0.6 * np.sign(np.sin(2 * np.pi * 100 * t))]
    s1 = generate_audio(sampler, 600, temps, seed_audio=seed, rng_seed=7)
    s2 = generate_audio(sampler, 600, temps, seed_audio=seed, rng_seed=7)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(s1, a)
    # The seed primes the RNN states, not only the last big frame used as context (PRiSM's):
    earlier_changed = [seed[0].copy(), seed[1].copy()]
    earlier_changed[0][-96:-32] = 0.0
    earlier_changed[1][-96:-32] = 0.0
    s3 = generate_audio(sampler, 600, temps, seed_audio=earlier_changed, rng_seed=7)
    assert not np.array_equal(s3, s1)
    assert s1.shape == (2, 600) and s1.dtype == np.float32


def test_progress_is_reported_and_can_stop_generation() -> None:
    sampler = Sampler(tiny_model())
    seen: list[float] = []

    class Stop(Exception):
        pass

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if fraction >= 0.5:
            raise Stop

    with pytest.raises(Stop):
        sampler.sample(32 * 10, np.ones((1, 1)), progress=progress)
    assert seen == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_output_length_matches_the_course() -> None:
    assert output_length(4, 16000) == 63936
    assert output_length(1, 16000) == 15936
