"""What a process reports of its memory: RSS read each time, PSS read at most every PSS_MAX_AGE_SECONDS."""

import numpy as np

from yyai.runtime import process_memory


def test_rss_is_fresh_and_pss_is_real(monkeypatch):
    monkeypatch.setattr(process_memory, "_pss", None)
    before = process_memory.process_memory()
    held = np.ones(64 << 20, np.uint8)  # 64 MiB, touched
    after = process_memory.process_memory()
    assert after["rss"] - before["rss"] > 60 << 20
    assert 0 < before["pss"] <= before["rss"]
    assert held.sum() == 64 << 20


def test_pss_is_read_at_most_once_per_max_age(monkeypatch):
    reads = []
    monkeypatch.setattr(process_memory, "_pss", None)
    monkeypatch.setattr(process_memory, "_read_pss", lambda: reads.append(1) or 1000 * len(reads))
    assert [process_memory.process_memory()["pss"] for _ in range(3)] == [1000, 1000, 1000]
    assert len(reads) == 1
    monkeypatch.setattr(process_memory, "PSS_MAX_AGE_SECONDS", 0.0)
    assert process_memory.process_memory()["pss"] == 2000


def test_a_forked_child_reads_its_own_pss(monkeypatch):
    monkeypatch.setattr(process_memory, "_read_pss", lambda: 7)
    monkeypatch.setattr(process_memory, "_pss", (-1, float("inf"), 5))  # read by another process (the parent)
    assert process_memory.process_memory()["pss"] == 7
