"""experiments/tagging/slots.py's error spans: each FN / FP span's kind and its worth in lost F1 points, on a
hand-made example counted by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("seqeval")

PATH = Path(__file__).resolve().parents[1] / "experiments/tagging/slots.py"
sys.path.insert(0, str(PATH.parent))  # its sibling tables.py, as when the script runs
spec = importlib.util.spec_from_file_location("tagging_slots", PATH)
slots = sys.modules["tagging_slots"] = importlib.util.module_from_spec(spec)  # its dataclasses look it up there
spec.loader.exec_module(slots)

WORDS = [["add", "the", "rhythm", "to", "my", "jazz", "playlist"],
         ["play", "abba", "now"],
         ["weather", "in", "paris", "today"]]
GOLD = [["O", "B-playlist", "I-playlist", "O", "B-playlist_owner", "B-playlist", "I-playlist"],
        ["O", "B-artist", "O"],
        ["O", "O", "B-city", "B-timeRange"]]
PRED = [["O", "O", "B-playlist", "O", "B-playlist_owner", "B-genre", "O"],  # article boundary; boundary+type
        ["O", "B-track", "O"],  # type
        ["B-city", "O", "O", "B-timeRange"]]  # missed paris, spurious weather


def test_error_kinds_and_lost_points_counted_by_hand():
    errors, n_gold, n_pred = slots.errors_of(GOLD, PRED, WORDS, lambda t, text: "seen span")
    assert (n_gold, n_pred) == (6, 6)  # right: playlist_owner, timeRange
    found = {(e.sentence, e.side, e.type, e.kind, e.other, e.article) for e in errors}
    assert found == {
        (0, "FN", "playlist", "boundary", "playlist", True), (0, "FP", "playlist", "boundary", "playlist", True),
        (0, "FN", "playlist", "boundary+type", "genre", False), (0, "FP", "genre", "boundary+type", "playlist", False),
        (1, "FN", "artist", "type", "track", False), (1, "FP", "track", "type", "artist", False),
        (2, "FN", "city", "missed", "", False), (2, "FP", "city", "spurious", "", False)}
    # 100 − F1 = 100 · (FN + FP) / (gold + predicted): 8 error spans of 12 spans, F1 = 2 · 2 / 12
    assert slots.span_f1(GOLD, PRED) == pytest.approx(100 * 4 / 12)
    rows = slots.points_rows([(errors, n_gold, n_pred)], lambda e: e.kind, slots.KINDS)
    assert sum(row["lost_points"] for row in rows) == pytest.approx(100 - slots.span_f1(GOLD, PRED))
    assert {row["label"]: row["lost_points"] for row in rows}["type"] == pytest.approx(100 * 2 / 12)
