import numpy as np
import pytest
import soundfile as sf

from hawk.audio import AudioError, choose_channel, iter_mono, read_mono
from hawk.download.demo import write_audio

SR = 37120


@pytest.mark.parametrize("name, sr", [("a.wav", 44100), ("b.flac", 32000), ("c.ogg", 48000), ("d.mp3", 22050),
                                      ("e.m4a", 44100)])
def test_reads_every_format_at_target_rate(audio_dir, name, sr):
    sig = read_mono(audio_dir / name, SR)
    # encoders may pad a frame or two; the length stays within 0.1 s of 7 s
    assert abs(len(sig) / SR - 7.0) < 0.1, len(sig) / SR
    assert 0.05 < np.abs(sig).max() < 1.5


@pytest.mark.parametrize("ext, rate", [("wav", 22050), ("flac", 48000), ("mp3", 44100), ("m4a", 32000)])
def test_resampling_keeps_pitch(tmp_path, tone, ext, rate):
    path = tmp_path / f"t.{ext}"
    write_audio(path, tone(3000, 4.0, rate), rate)
    sig = read_mono(path, SR)[SR : 3 * SR]
    peak_hz = np.argmax(np.abs(np.fft.rfft(sig))) * SR / len(sig)
    assert abs(peak_hz - 3000) < 5


def test_block_streaming_matches_whole_file(tmp_path, tone):
    path = tmp_path / "long.flac"
    write_audio(path, tone(2000, 20.0, 44100) + tone(5000, 20.0, 44100, 0.1), 44100)
    whole = read_mono(path, SR)
    _, blocks = iter_mono(path, SR, block_seconds=1.3)
    assert np.allclose(np.concatenate(list(blocks)), whole, atol=1e-6)


def test_stereo_keeps_less_noisy_channel(tmp_path, tone):
    clean = tone(2500, 6.0, 32000)
    noisy = clean + np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 0.3
    for order, expect in (((clean, noisy), 0), ((noisy, clean), 1)):
        path = tmp_path / f"s{expect}.wav"
        sf.write(path, np.stack(order, axis=1), 32000)
        assert choose_channel(sf.read(path, dtype="float32")[0], 32000) == expect


def test_stereo_never_keeps_an_all_zero_channel(tmp_path):
    noise = np.random.default_rng(1).standard_normal(32000 * 5).astype(np.float32) * 0.5
    block = np.stack([np.zeros_like(noise), noise], axis=1)
    assert choose_channel(block, 32000) == 1


def test_not_audio_names_file_and_reason(tmp_path):
    bad = tmp_path / "fake.mp3"
    bad.write_bytes(b"<html>403 Forbidden</html>" * 10)
    with pytest.raises(AudioError) as e:
        read_mono(bad, SR)
    assert "fake.mp3" in str(e.value) and "not readable as audio" in str(e.value)
    with pytest.raises(AudioError, match="no such file"):
        read_mono(tmp_path / "missing.wav", SR)
