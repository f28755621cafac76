import numpy as np
import pytest
import torch
import torchaudio

from hawk.spectrogram import SpecSettings, SpectrogramMaker, decode, encode, spectrograms_of


def test_defaults_are_hawkears_v1():
    s = SpecSettings()
    assert (s.segment_len, s.sample_rate, s.spec_height, s.spec_width) == (3.0, 37120, 192, 384)
    assert (s.win_length, s.n_fft, s.hop_length, s.min_freq, s.max_freq) == (2048, 4096, 290, 200, 13000)
    assert s.mel_scale and s.power == 1.0 and s.offset == 1.5


def test_equals_torchaudio_over_whole_recording():
    s = SpecSettings()
    x = np.random.default_rng(0).standard_normal(s.sample_rate * 10).astype(np.float32) * 0.1
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=s.sample_rate, n_fft=s.n_fft, win_length=s.win_length, hop_length=s.hop_length,
        f_min=s.min_freq, f_max=s.max_freq, n_mels=s.spec_height, power=s.power)(torch.from_numpy(x)).numpy()
    specs = spectrograms_of(x, s)
    assert [o for o, _ in specs] == [0.0, 1.5, 3.0, 4.5, 6.0]  # 7.5 + 3 s would pass the end
    for offset, spec in specs:
        f = round(offset * s.sample_rate / s.hop_length)
        r = ref[:, f : f + s.spec_width]
        assert spec.shape == (192, 384) and spec.max() == pytest.approx(1.0)
        assert np.abs(r / r.max() - spec).max() < 1e-5


def test_block_boundaries_do_not_matter():
    s = SpecSettings()
    x = np.random.default_rng(1).standard_normal(s.sample_rate * 8).astype(np.float32)
    whole = spectrograms_of(x, s)
    pieces = list(SpectrogramMaker(s).segments(np.array_split(x, 17)))
    assert len(whole) == len(pieces)
    assert max(np.abs(a - b).max() for (_, a), (_, b) in zip(whole, pieces)) < 1e-5


def test_offset_setting_and_short_input():
    s = SpecSettings(offset=3.0)
    assert [o for o, _ in spectrograms_of(np.ones(s.sample_rate * 9, np.float32), s)] == [0.0, 3.0, 6.0]
    assert spectrograms_of(np.ones(s.sample_rate * 2, np.float32), s) == []


def test_encode_is_hawkears_uint8_zlib():
    spec = np.random.default_rng(2).random((192, 384)).astype(np.float32)
    back = decode(encode(spec))
    assert back.dtype == np.float32 and np.abs(back - spec).max() <= 1 / 255 + 1e-6


def test_unknown_setting_refused():
    with pytest.raises(ValueError, match="unknown audio setting.*offest"):
        SpecSettings.from_mapping({"offest": 3})
