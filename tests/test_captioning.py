"""task=captioning: the synthetic scenes and the checker of what a caption asserts, multi-reference BLEU against
sacreBLEU's, the captioner's decoders (beam 1 is greedy, batching never changes a caption), a folder of the user's
images with its bad inputs, and a tiny run through train.py, eval.py and caption.py."""

from __future__ import annotations

import math
import os
import random
import sys

import pytest
import sacrebleu
import torch
from conftest import ROOT, run_owned, tracked_fit
from omegaconf import OmegaConf
from PIL import Image

from rnnlab import decoding
from rnnlab.cli import prediction_images
from rnnlab.data.captions import ImageSettings
from rnnlab.data.download import DataError
from rnnlab.data.image_captions import ImageCaptionsDataModule
from rnnlab.data.synthetic_scenes import (
    SceneObject,
    SyntheticScenesDataModule,
    check_caption,
    paraphrases,
    sample_scene,
)
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.tasks.captioning import CaptioningTask, bleu_scores, cider_percent
from rnnlab.tasks.cider import cider_d_per_image, coco_words

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_SCENES = dict(train_images=40, val_images=12, test_images=12, unseen_images=6, image_size=24)
DECODER = {"cell": "lstm", "embedding_size": 8, "hidden_size": 16, "num_layers": 2, "encoder_layers": 2,
           "encoder_channels": 16}


# --- synthetic scenes and the checker ---------------------------------------------------------------------------
def scenes(**options) -> SyntheticScenesDataModule:
    data = SyntheticScenesDataModule(**{**TINY_SCENES, **options})
    data.setup()
    return data


def test_scenes_and_captions_are_a_function_of_the_seed():
    first, again, other = scenes(), scenes(), scenes(seed=1)
    for split in ("train", "val", "test", "test_unseen"):
        assert torch.equal(first.images(split), again.images(split))
        assert first.references(split) == again.references(split)
    assert not torch.equal(first.images("train"), other.images("train"))
    assert first.references("train") != other.references("train")
    assert first.tokenizer_state() == again.tokenizer_state()  # eval.py compares them


def test_held_out_combinations_are_only_in_the_unseen_split():
    data = scenes(train_images=300, unseen=["red triangle", "blue circle"])
    held_out = {("red", "triangle"), ("blue", "circle")}
    for split in ("train", "val", "test"):
        assert not any((o.colour, o.shape) in held_out for scene in data.scenes[split] for o in scene)
        assert not any("red triangle" in c or "blue circle" in c for cs in data.references(split) for c in cs)
    assert all(any((o.colour, o.shape) in held_out for o in scene) for scene in data.scenes["test_unseen"])
    assert scenes(unseen=[]).test_splits == ("test",)


def test_every_paraphrase_asserts_only_what_is_so_and_names_every_object():
    rng = random.Random(0)
    allowed = [(s, c, sh) for s in ("small", "large") for c in ("red", "green", "blue") for sh in ("circle", "square")]
    for _ in range(200):
        scene = sample_scene(rng, rng.randint(1, 4), 48, allowed)
        captions = paraphrases(scene)
        assert len(captions) == len(set(captions)) >= 2
        for caption in captions:
            assessment = check_caption(caption, scene)
            assert assessment.correct and assessment.true == assessment.made > 0, caption


SCENE = (SceneObject("small", "red", "circle", 0, 0, 8, 8), SceneObject("large", "blue", "square", 0, 2, 40, 8))


@pytest.mark.parametrize(("caption", "true", "made"), [
    ("a small red circle left of a large blue square", 7, 7),
    ("a large blue square right of a small red circle", 7, 7),
    ("a small green circle left of a large blue square", 6, 7),  # one wrong colour: exactly its assertion
    ("a small red circle right of a large blue square", 6, 7),  # a wrong relation
    ("a small red circle above a large blue square", 6, 7),  # same row: not above
    ("a large red circle left of a large blue square and a small blue square right of a small red circle", 12, 14),
    ("a small red circle at the top left", 4, 4),
    ("there is a small red circle in the middle", 3, 4),  # a wrong place
    ("a small red circle left of a large blue square and red red", 7, 8),  # a clause that does not parse
    ("", 0, 0),
])
def test_the_checker_counts_each_attribute_and_relation_as_one_assertion(caption, true, made):
    assessment = check_caption(caption, SCENE)
    assert (assessment.true, assessment.made) == (true, made)


def test_the_scores_are_precision_recall_and_whole_captions():
    data = scenes()
    truth = {i: refs[0] for i, refs in enumerate(data.references("val"))}
    assert data.caption_scores("val", truth)["assertion_acc"] == 1
    first_objects = {i: data.scenes["val"][i][0].noun_phrase() + " in the middle" for i in truth}
    scores = data.caption_scores("val", first_objects)
    assert scores["object_recall"] == pytest.approx(len(truth) / sum(map(len, data.scenes["val"])))
    assert scores["caption_acc"] < 1 and 0 < scores["assertion_acc"] < 1
    assert {key for key in scores if key.startswith("assertion_acc/objects_")}  # by number of objects


# --- BLEU ---------------------------------------------------------------------------------------------------------
def test_multi_reference_bleu_equals_sacrebleus_with_every_reference_of_an_image():
    hypotheses = ["a large blue square right of a red circle", "a green triangle", "a white square above a circle"]
    references = [["a small red circle left of a large blue square", "a large blue square right of a small red circle"],
                  ["a large green triangle at the top"],
                  ["a white square above a red circle", "a red circle below a white square", "there is a square"]]
    scores, signatures = bleu_scores(hypotheses, references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(3)]
    for n, name in ((4, "bleu"), (1, "bleu1"), (2, "bleu2"), (3, "bleu3")):
        expected = sacrebleu.metrics.BLEU(max_ngram_order=n).corpus_score(hypotheses, streams).score
        assert scores[name] == pytest.approx(expected)
    assert signatures["bleu_signature"].startswith("nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp")
    one_reference = bleu_scores(hypotheses, [refs[:1] for refs in references])[0]["bleu"]
    assert scores["bleu"] > one_reference  # the second references count
    assert bleu_scores([refs[-1] for refs in references], references)[0]["bleu"] == pytest.approx(100)


# --- CIDEr-D ------------------------------------------------------------------------------------------------------
CORPUS_HYPOTHESES = ["a small red circle left of a large blue square", "a cat cat cat cat on a mat", "",
                     "a dog runs on the grass", "two men play football in a park while people watch",
                     "there is a large green triangle at the bottom left"]
CORPUS_REFERENCES = [
    ["a small red circle left of a large blue square", "a large blue square right of a small red circle"],
    ["a cat sits on a mat", "a cat on a mat"],
    ["a red circle in the middle"],
    ["a brown dog runs on the green grass", "the dog is running", "a dog plays outside on grass", "dog on grass"],
    ["men playing football in a park"],
    ["a large green triangle at the bottom left", "there is a large green triangle at the bottom left",
     "a large green triangle"]]
# pycocoevalcap 1.2's CiderScorer(n=4, sigma=6.0).compute_score() on this corpus (its cider_scorer.py, run once):
# per image, and their mean, the corpus score
PYCOCOEVALCAP_CIDER = [8.01336386082369, 2.83483854202386, 0.0, 2.378880389512096, 3.156127602473907,
                       7.050047257905177]
PYCOCOEVALCAP_CORPUS = 3.905542942123122


def test_cider_d_equals_pycocoevalcaps_on_a_fixed_corpus():
    scores = cider_d_per_image(CORPUS_HYPOTHESES, CORPUS_REFERENCES)
    assert scores == pytest.approx(PYCOCOEVALCAP_CIDER, abs=1e-9)  # clipping of "cat cat cat cat" included
    assert sum(scores) / len(scores) == pytest.approx(PYCOCOEVALCAP_CORPUS, abs=1e-9)
    assert cider_percent(scores) == pytest.approx(100 * PYCOCOEVALCAP_CORPUS)


def test_cider_d_by_hand_perfect_empty_and_clipped():
    idf = math.log(2)  # two images; every n-gram is in the references of one of them
    # image 1, n = 1: g(c) = {a: idf}, g(s) = {a: idf, b: idf}, cosine 1/√2; no bigram in c; length 1 against 2
    # image 2, c = s: cosine 1 for n = 1, 2, and no 3- or 4-grams
    assert idf > 0 and cider_d_per_image(["a", "c d"], [["a b"], ["c d"]]) == pytest.approx(
        [10 * (1 / math.sqrt(2)) * math.exp(-1 / 72) / 4, 10 * 2 / 4])
    # "x x" against "x y": min(2·idf, idf)·idf / (2·idf · √2·idf) = 1/(2√2) with clipping (1/√2 without)
    assert cider_d_per_image(["x x", "c d"], [["x y"], ["c d"]])[0] == pytest.approx(10 * (1 / (2 * math.sqrt(2))) / 4)
    perfect = ["a small red circle sits here", "two large blue squares stand there", "one green triangle lies low"]
    assert cider_d_per_image(perfect, [[caption] for caption in perfect]) == pytest.approx([10, 10, 10])
    assert cider_d_per_image(["", *perfect[1:]], [[caption] for caption in perfect])[0] == 0
    assert cider_d_per_image(perfect[:1], [perfect[:1]]) == [0]  # one image alone: every n-gram in every document
    assert coco_words("A Dog,  running.") == ["a", "dog", "running"]  # as coco-caption's tokenizer leaves it
    with pytest.raises(ValueError, match="every image needs at least one reference caption"):
        cider_d_per_image(["a"], [[]])


# --- the captioner ------------------------------------------------------------------------------------------------
def captioner(attention: str, **settings) -> CaptioningTask:
    torch.manual_seed(0)
    model = {**DECODER, "attention": None if attention == "none" else {"type": attention}}
    task = CaptioningTask(vocab_size=12, pad_id=0, bos_id=1, eos_id=2, image_size=16, model=model,
                          optimizer={"_target_": "torch.optim.Adam", "lr": 0.01}, max_len_b=7, **settings)
    return task.eval()


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong_general"])
def test_beam_size_one_is_greedy_for_the_captioner(attention):
    task = captioner(attention, decode="greedy")
    images = torch.randn(5, 3, 16, 16)
    greedy = task.decode(images)
    task.hparams.update(decode="beam", beam_size=1)
    beam = task.decode(images)
    assert beam.tokens == greedy.tokens and any(greedy.tokens)


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong_concat"])
def test_batching_and_padding_never_change_a_caption(attention):
    task = captioner(attention, decode="beam", beam_size=3)
    images = torch.randn(4, 3, 16, 16)
    together = task.decode(images, return_attention=attention != "none")
    for k in range(4):
        alone = task.decode(images[k:k + 1], return_attention=attention != "none")
        assert alone.tokens[0] == together.tokens[k]
        if attention != "none":
            assert torch.allclose(alone.attention[0], together.attention[k], atol=1e-5)
            assert together.attention[k].shape == (len(together.tokens[k]), 16)  # a 4 × 4 grid of regions
    short = torch.tensor([[1, 5, 6]])
    padded = torch.tensor([[1, 5, 6, 0, 0, 0], [1, 7, 8, 9, 10, 11]])  # beside a longer caption of another image
    with torch.no_grad():
        alone = task.model(images[:1], short).logits
        batched = task.model(images[:2], padded, torch.tensor([0, 1])).logits
    assert torch.allclose(alone[0], batched[0, :3], atol=1e-5)


def test_a_flattened_image_summary_keeps_where_the_regions_are_and_the_mean_does_not():
    inputs = dict(vocab_size=12, pad_id=0, bos_id=1, eos_id=2, image_size=16)
    regions = torch.randn(2, 16, 16)  # (B, R, C): a 4 × 4 grid of 16 channels
    swapped = regions[:, torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    lengths = torch.full((2,), 16)
    initial = {}
    for summary in ("mean", "flatten"):
        torch.manual_seed(0)
        model = registry.build({**DECODER, "image_summary": summary}, "captioner", **inputs).eval()
        assert model.init_h.in_features == 16 * (16 if summary == "flatten" else 1)
        with torch.no_grad():
            initial[summary] = [model.encode(r, lengths)[1].rnn[0] for r in (regions, swapped)]
    assert torch.allclose(*initial["mean"], atol=1e-6)  # ā forgets which region held what
    assert not torch.allclose(*initial["flatten"], atol=1e-3)  # the flattened grid keeps it
    with pytest.raises(ConfigError, match="model.image_summary='max' is invalid: choose one of mean, flatten"):
        registry.build({**DECODER, "image_summary": "max"}, "captioner", **inputs)


def test_the_captioner_is_one_line_errors_for_what_it_cannot_be():
    inputs = dict(vocab_size=12, pad_id=0, bos_id=1, eos_id=2, image_size=16)
    for model, message in [
        ({"encoder_weights": "resnet18.pth"},
         "model.encoder_weights=resnet18.pth is a pretrained ResNet's, and model.encoder=cnn trains from scratch"),
        ({"encoder_layers": 5}, "model.encoder_layers=5 halves data.image_size=16 to nothing: use at most 4"),
        ({"attention": {"type": "local"}}, "attention=local predicts a position along a sentence"),
        ({"attention": {"type": "luong_dot"}, "hidden_size": 32},
         "needs the regions' size \\(16, model.encoder_channels\\) == model.hidden_size \\(32\\)"),
        ({"bidirectional": True}, "model.bidirectional=True does not apply to task=captioning"),
        ({"encoder": "resnet"}, "model.encoder='resnet' is invalid: choose one of cnn, resnet18, resnet34, resnet50"),
    ]:
        with pytest.raises(ConfigError, match=message) as error:
            registry.build({**DECODER, **model}, "captioner", **inputs)
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="model=ngram has no captioner network: it fits task=lm"):
        registry.build({"family": "ngram"}, "captioner", **inputs)


# --- a folder of images -------------------------------------------------------------------------------------------
def write_folder(root, count: int = 8):
    """count images of different sizes and modes (JPEG RGB and grey, PNG RGBA) and a CSV of two captions each."""
    images = root / "images"
    images.mkdir()
    rows = ["image,caption"]
    for k in range(count):
        name = f"photo{k}.png" if k % 4 == 3 else f"photo{k}.jpg"
        mode = {0: "RGB", 1: "L", 2: "RGB", 3: "RGBA"}[k % 4]
        picture = Image.new(mode, (30 + 7 * k, 20 + 3 * k), color=(40 * k % 255,) * len(mode))
        picture.save(images / name)
        rows += [f"{name},A photo   number {k}.", f'{name},"Picture {k}, a test"']
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return images, root / "captions.csv"


def folder(images, captions, **options) -> ImageCaptionsDataModule:
    data = ImageCaptionsDataModule(images_dir=str(images), captions=str(captions), image_size=16, **options)
    data.setup()
    return data


def test_a_folder_of_any_images_and_a_csv_of_captions_round_trips(tmp_path):
    images, captions = write_folder(tmp_path)
    data = folder(images, captions, val_fraction=0.25, test_fraction=0.25)
    assert sorted(data.names("train") + data.names("val") + data.names("test")) == [
        "photo0.jpg", "photo1.jpg", "photo2.jpg", "photo3.png", "photo4.jpg", "photo5.jpg", "photo6.jpg", "photo7.png"]
    assert [len(data.names(split)) for split in ("train", "val", "test")] == [4, 2, 2]
    assert data.images("train").shape == (4, 3, 16, 16) and data.images("train").dtype == torch.uint8
    k = int(data.names("val")[0][5])
    assert data.references("val")[0] == [f"a photo number {k}.", f"picture {k}, a test"]  # normalised, lowercased
    batch = next(iter(data.val_dataloader()))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["tgt_in"].shape[0] == 4
    assert batch["caption_image"].tolist() == [0, 0, 1, 1]
    again = ImageSettings.from_state(data.tokenizer_state()["image"])
    assert torch.equal(again.read(images / data.names("val")[0]), data.images("val")[0])  # caption.py reads alike

    tokens = tmp_path / "Flickr8k.token.txt"  # the same captions in Flickr8k's layout, with split files
    tokens.write_text("".join(f"{name}#{i}\t{caption}\n" for name, caps in
                              [(n, c) for n, c in zip(data.names("train") + data.names("val"),
                                                      data.references("train") + data.references("val"))]
                              for i, caption in enumerate(caps)))
    (tmp_path / "train.txt").write_text("\n".join(data.names("train")) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(data.names("val")) + "\n")
    flickr = folder(images, tokens, train_split=str(tmp_path / "train.txt"), val_split=str(tmp_path / "val.txt"))
    assert flickr.references("val") == data.references("val") and flickr.names("test") == data.names("val")
    assert flickr.tokenizer_state() == data.tokenizer_state()


def test_bad_image_folders_are_one_line_errors_or_counted_skips(tmp_path):
    images, captions = write_folder(tmp_path)
    good = (images / "photo2.jpg").read_bytes()
    (images / "photo2.jpg").unlink()
    with pytest.raises(DataError, match="photo2.jpg: no such image file, named in data.captions=.* set "
                                        "data.skip_bad_images=true") as error:
        folder(images, captions)
    assert "\n" not in str(error.value)
    (images / "photo5.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "train.txt").write_text("".join(f"photo{k}.{'png' if k == 3 else 'jpg'}\n" for k in range(6)))
    (tmp_path / "val.txt").write_text("photo6.jpg\nphoto7.png\n")
    skipping = folder(images, captions, skip_bad_images=True, train_split=str(tmp_path / "train.txt"),
                      val_split=str(tmp_path / "val.txt"))
    assert skipping.names("train") == ["photo0.jpg", "photo1.jpg", "photo3.png", "photo4.jpg"]
    assert skipping.skipped["train"]["images that could not be read"] == 2
    (images / "photo2.jpg").write_bytes(good)
    with pytest.raises(DataError, match="photo5.jpg cannot be read as an image"):
        folder(images, captions)

    (images / "photo5.jpg").write_bytes(good)
    with_empty = tmp_path / "empty.csv"
    with_empty.write_text(captions.read_text() + "photo1.jpg,   \n")
    assert sum(counts.get("empty captions", 0) for counts in folder(images, with_empty).skipped.values()) == 1
    for text, message in [("photo0.jpg\tA caption\n", "is neither a CSV with the header image,caption nor"),
                          ("image,caption\nphoto0.jpg\n", "line 2 is not image,caption"),
                          ("photo0.jpg#0\n", "is neither a CSV")]:
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(DataError, match=message):
            folder(images, tmp_path / "bad.csv")
    (tmp_path / "split.txt").write_text("photo0.jpg\nunknown.jpg\n")
    with pytest.raises(DataError, match="names unknown.jpg \\(entry 2\\), which data.captions=.* has no caption"):
        folder(images, captions, train_split=str(tmp_path / "split.txt"), val_split=str(tmp_path / "split.txt"))
    with pytest.raises(ConfigError, match="data.images_dir is not set"):
        ImageCaptionsDataModule(captions=str(captions))
    with pytest.raises(ConfigError, match="data.train_split and data.val_split go together"):
        ImageCaptionsDataModule(images_dir=str(images), captions=str(captions), val_split=str(tmp_path / "split.txt"))


# --- the configs ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "attention"), [("rnn", "none"), ("lstm", "bahdanau"), ("gru", "luong_general"),
                                                  ("leaky_rnn", "luong_concat")])
def test_task_captioning_composes_with_each_recurrent_model_and_attention(make_cfg, model, attention):
    cfg = make_cfg("task=captioning", f"model={model}", f"attention={attention}", tiny=False)
    assert cfg.data._target_.endswith("SyntheticScenesDataModule") and cfg.monitor.metric == "val/bleu"
    plain = OmegaConf.to_container(cfg, resolve=True)
    network = registry.build(plain["model"], "captioner", vocab_size=29, pad_id=0, bos_id=1, eos_id=2, image_size=48)
    assert network.grid == (6, 6) and (network.attention is None) == (attention == "none")
    with pytest.raises(ConfigError, match="model.skip=2 is not supported"):
        registry.build({**plain["model"], "skip": 2}, "captioner", vocab_size=29, pad_id=0, bos_id=1, eos_id=2,
                       image_size=48)


def test_data_image_captions_without_its_folder_is_one_line(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg("task=captioning", "data=image_captions", tiny=False)
    with pytest.raises(Exception, match="data.images_dir is not set: give your images' folder") as error:
        instantiate(cfg.data)
    assert isinstance(error.value.__cause__ or error.value, ConfigError)


# --- train.py, eval.py and caption.py -----------------------------------------------------------------------------
RUN = ["task=captioning", "model=gru", "attention=bahdanau", "model.embedding_size=16", "model.hidden_size=32",
       "model.num_layers=1", "model.encoder_layers=2", "model.encoder_channels=16", "data.train_images=64",
       "data.val_images=16", "data.test_images=16", "data.unseen_images=8", "data.image_size=24",
       "data.batch_size=16", "trainer.max_epochs=1", "task.beam_size=2", "task.max_len_b=10", "task.num_samples=2",
       "task.num_attention_images=1", "callbacks.progress_bar.refresh_rate=0", "+trainer.enable_model_summary=false"]


def test_train_py_captions_scenes_and_eval_py_and_caption_py_read_its_checkpoint(tmp_path):
    from test_task_family import compose_eval

    from rnnlab.evaluation import evaluate

    run = tracked_fit(RUN, tmp_path)
    metrics, client, run_id = run["metrics"], run["client"], run["run_id"]
    assert run["cfg"].monitor.metric == "val/bleu" and run["tags"]["task"] == "captioning"
    for split in ("val", "test", "test_unseen"):
        assert {f"{split}/{name}" for name in ("loss", "ppl", "bleu", "bleu1", "cider", "assertion_acc",
                                               "object_recall", "caption_acc")} <= set(metrics)
    assert any(key.startswith("test/bleu/objects_") for key in metrics)
    assert any(key.startswith("test/cider/objects_") for key in metrics)
    tags = client.get_run(run_id).data.tags
    assert tags["bleu_signature"].startswith("nrefs:") and tags["cider_signature"].startswith("CiderD|n:4|sigma:6|")
    artifacts = {a.path for folder in ("captions", "attention") for a in client.list_artifacts(run_id, folder)}
    assert {"captions/val_epoch_000.png", "captions/val_epoch_000.md", "captions/test.png",
            "captions/test_captions.tsv", "captions/test_unseen.png", "attention/val_epoch_000_image_0000.png",
            "attention/test_image_0000.png"} <= artifacts

    scored = evaluate(compose_eval(f"ckpt={run_id}", tmp_path=tmp_path, uri=run["uri"]))
    assert scored["test/bleu"] == pytest.approx(metrics["test/bleu"])
    assert scored["test/cider"] == pytest.approx(metrics["test/cider"])
    assert scored["test_unseen/assertion_acc"] == pytest.approx(metrics["test_unseen/assertion_acc"])

    checkpoint = next((run["dir"] / "checkpoints").glob("epoch*.ckpt"))
    task = CaptioningTask.from_checkpoint(checkpoint, "best")
    (tmp_path / "photos").mkdir()
    scene = tmp_path / "photos" / "scene.png"
    data = scenes()
    Image.fromarray(data.images("test")[0].permute(1, 2, 0).numpy()).save(scene)
    expected = task.caption([scene])[0]
    assert expected == task.subwords.decode_target(task.decode(data.image_settings.normalise(
        data.images("test")[:1])).tokens[0])  # read from the file as the data module read it
    done = run_owned([sys.executable, "caption.py", f"ckpt={checkpoint}", f"input={tmp_path / 'photos'}"], cwd=ROOT,
                     env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["image\tcaption", f"{scene}\t{expected}"]


def test_caption_py_reads_one_image_a_folder_or_a_list_and_says_what_is_missing(tmp_path):
    images, _ = write_folder(tmp_path)
    (tmp_path / "list.txt").write_text(f"{images / 'photo1.jpg'}\n\n{images / 'photo0.jpg'}\n")

    def paths(**given):
        return prediction_images(OmegaConf.create({"image": None, "input": None, "device": "cpu", "batch_size": 2,
                                                   **given}))

    assert paths(image=str(images / "photo3.png")) == [images / "photo3.png"]
    assert paths(input=str(images)) == sorted(images.iterdir()) and len(paths(input=str(images))) == 8
    assert paths(input=str(tmp_path / "list.txt")) == [images / "photo1.jpg", images / "photo0.jpg"]
    for given, message in [({"image": str(tmp_path / "no.jpg")}, f"image={tmp_path / 'no.jpg'}: no such file"),
                           ({}, "give image=<an image file> or input=<a folder of images, or a file of their paths>"),
                           ({"input": str(tmp_path / "list.txt"), "image": "a.jpg"}, "not both"),
                           ({"input": str(tmp_path / "run")}, "no such folder or file"),
                           ({"input": str(tmp_path / "list.txt"), "batch_size": 0}, "batch_size=0 is invalid")]:
        with pytest.raises(ConfigError, match=message):
            paths(**given)


def test_decoding_dispatches_on_the_task_keys():
    task = captioner("luong_general", decode="sample", temperature=0.0)
    regions = task.model.regions(torch.randn(3, 3, 16, 16))
    lengths = task.model.region_lengths(regions)
    assert decoding.decode(task.model, regions, lengths, task.hparams).tokens == \
        decoding.greedy(task.model, regions, lengths, (0.0, 7)).tokens  # temperature 0 samples the argmax


def real_photos(root):
    """A Flickr8k-layout folder of real photographs: matplotlib's sample portrait of Grace Hopper (a photograph, not
    a rendering) and crops of it at other sizes, re-encoded as JPEG, each with two hand-written captions."""
    from matplotlib import cbook

    portrait = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    width, height = portrait.size
    crops = {"portrait.jpg": ((0, 0, width, height), ["a woman in a navy uniform", "a portrait of an officer"]),
             "face.jpg": ((width // 4, 0, 3 * width // 4, height // 2), ["a woman with grey hair", "a smiling face"]),
             "medals.jpg": ((0, height // 2, width, height), ["a uniform with medals", "a dark jacket with ribbons"]),
             "left.jpg": ((0, 0, width // 2, height), ["half of a portrait", "a woman in a dark uniform"]),
             "grey.jpg": ((0, 0, width, height), ["a grey photo of a woman", "an old portrait of an officer"])}
    images = root / "photos"
    images.mkdir()
    lines = []
    for name, (box, captions) in crops.items():
        picture = portrait.crop(box)
        (picture.convert("L") if name == "grey.jpg" else picture).save(images / name, quality=90)
        lines += [f"{name}#{k}\t{caption}\n" for k, caption in enumerate(captions)]
    (root / "Flickr8k.token.txt").write_text("".join(lines))
    (root / "train.txt").write_text("portrait.jpg\nface.jpg\nmedals.jpg\n")
    (root / "val.txt").write_text("left.jpg\n")
    (root / "test.txt").write_text("grey.jpg\n")
    return images, portrait.size


def test_train_py_trains_on_a_flickr8k_folder_of_real_photographs_and_caption_py_captions_them(tmp_path):
    images, size = real_photos(tmp_path)
    assert size[0] > 500 and size[1] > 500  # a full-size photograph, resized by the data module
    run = tracked_fit([*RUN[:8], "data=image_captions", f"data.images_dir={images}",
                       f"data.captions={tmp_path / 'Flickr8k.token.txt'}", f"data.train_split={tmp_path / 'train.txt'}",
                       f"data.val_split={tmp_path / 'val.txt'}", f"data.test_split={tmp_path / 'test.txt'}",
                       "data.image_size=32", "data.batch_size=2", *RUN[14:]], tmp_path)
    metrics = run["metrics"]
    assert {"val/bleu", "val/cider", "test/bleu", "test/ppl"} <= set(metrics) and math.isfinite(metrics["test/ppl"])
    assert not any(key.startswith("test/assertion") for key in metrics)  # a real photo has no scene to check
    artifacts = {a.path for a in run["client"].list_artifacts(run["run_id"], "captions")}
    assert {"captions/test.png", "captions/test_captions.tsv"} <= artifacts

    checkpoint = next((run["dir"] / "checkpoints").glob("epoch*.ckpt"))
    done = run_owned([sys.executable, "caption.py", f"ckpt={checkpoint}", f"input={images}"], cwd=ROOT,
                     env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "image\tcaption" and [line.split("\t")[0] for line in lines[1:]] == [
        str(path) for path in sorted(images.iterdir())]
