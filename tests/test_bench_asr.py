import shutil
from pathlib import Path

import pytest

from scribe.bench.asr import discover, print_table, run_asr_bench
from scribe.config import Settings
from scribe.errors import BadInputError
from tests.conftest import SAMPLES


def test_discover_needs_reference_transcripts(tmp_path: Path):
    shutil.copy(SAMPLES / "cardiology_followup.wav", tmp_path)
    with pytest.raises(BadInputError, match="no WAV file with a reference"):
        discover(tmp_path)
    with pytest.raises(BadInputError, match="not a directory"):
        discover(tmp_path / "nope")


def test_bench_reports_wer_recall_rtf_and_memory(tmp_path: Path, settings: Settings):
    pytest.importorskip("transformers", reason="the full-size MedASR timing needs the gpu extra")
    for suffix in (".wav", ".txt", ".bundle.json"):
        shutil.copy(SAMPLES / f"cardiology_followup{suffix}", tmp_path)
    summary = run_asr_bench(tmp_path, settings)
    whisper = summary["whisper"]
    assert whisper["engine"] == "whisper" and len(whisper["files"]) == 1
    assert whisper["records"]["drugs_spoken"] == 3 and whisper["plain"]["drugs_spoken"] == 3
    for label in ("plain", "records"):
        assert 0 <= whisper[label]["wer"] <= 1.5 and whisper[label]["rtf"] > 0
    assert whisper["load_s_warm"] > 0 and whisper["peak_rss_mb"] > 100
    full = summary["medasr_full_size"]
    assert 100e6 < full["parameters"] < 110e6 and full["rtf"] > 0
    import io

    table = io.StringIO()
    print_table(summary, table)
    assert "TOTAL records" in table.getvalue() and "M parameters" in table.getvalue()


def test_bench_counts_recorded_drugs_written_but_not_spoken():
    """A transcript naming a recorded drug the speaker never said is counted against the records pass."""
    from scribe.bench.asr import BenchItem, _measure
    from scribe.transcript import Transcript

    class Engine:
        def transcribe(self, audio, *, context=None, progress=None):
            text = "On apixaban and atorvastatin." if context is not None else "On a big span."
            return Transcript(text=text, language="en", engine="fake", model="fake", duration_s=len(audio) / 16000,
                              processing_s=0.5, segments=[])

    wav = SAMPLES / "cardiology_followup.wav"
    item = BenchItem(wav, wav.with_suffix(".txt").read_text(), wav.with_name(wav.stem + ".bundle.json"))
    summary = _measure(Engine(), [item])
    assert summary["records"]["drugs_found"] == 1 and summary["records"]["drugs_inserted"] == 1  # atorvastatin
    assert summary["plain"]["drugs_found"] == 0 and summary["plain"]["drugs_inserted"] == 0
