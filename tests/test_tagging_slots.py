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


def test_a_checkpoint_tags_valid_freely_and_within_the_gold_intents_schema(tmp_path):
    import lightning.pytorch as L
    from test_tagging import SMALL
    from test_tagging_intents import ADAM, generated, snips_folder

    from rnnlab.data.snips_slots import SnipsSlotsDataModule
    from rnnlab.tasks.tagging import TaggingTask

    data = SnipsSlotsDataModule(root=str(snips_folder(tmp_path / "data", {"train": generated(60, 1),
                                                                            "valid": generated(20, 2)})))
    data.setup()
    task = TaggingTask(**data.task_inputs, model=SMALL, optimizer=ADAM, crf=True, num_examples=0, confusion_tags=0,
                       tokenizer=data.tokenizer_state())
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(task, datamodule=data)
    trainer.save_checkpoint(tmp_path / "slots.ckpt", weights_only=False)
    words, intents = data.sentences("val"), [row[1] for row in generated(20, 2)]
    run = slots.Run(str(tmp_path / "slots.ckpt"), "1", None)
    schema = {"PlayMusic": {"artist"}, "AddToPlaylist": {"playlist"}}
    slots.tag_valid(run, words, intents, schema, uri="sqlite:///unused.db")
    assert run.predicted == task.eval().tag(words)  # as tag.py tags them
    for tags, intent in zip(run.oracle, intents):
        assert len(tags) and all(tag == "O" or tag[2:] in schema[intent] for tag in tags)
