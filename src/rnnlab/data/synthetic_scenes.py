"""`data=synthetic_scenes`: rendered scenes whose captions say what is where, and a checker of what a caption asserts.

A scene is 1 to 4 objects on a dark square canvas (`image_size` pixels) cut into a 3 × 3 grid of cells, one object
per cell, jittered inside it. An object has a size (small, large), a colour (red, green, blue, yellow, white) and a
shape (circle, square, triangle); no two objects of a scene look alike. Its captions come from a grammar:

    caption   := clause (" and " clause)*
    clause    := np " " relation " " np              two objects, one after the other in reading order
               | ["there is "] np " " place          a scene of one object
    np        := "a " size " " colour " " shape
    relation  := "left of" | "right of" | "above" | "below"
    place     := "at the top left" | "at the top" | ... | "in the middle" | ... | "at the bottom right"

    "a small red circle left of a large blue square and a large blue square above a small white triangle"

The objects of a scene are chained in reading order (by row, then column), one clause per neighbouring pair: an
object in the same row as the next one is "left of" it, else "above" it. Paraphrases say the same thing in other
words: a clause flipped ("a large blue square right of a small red circle"), the chain read backwards, "there is".
Each image gets `captions_per_image` distinct paraphrases (fewer where fewer exist), all references for BLEU.

What a caption asserts is checkable, because the scene is known (`check_caption`). Each clause asserts each
attribute of each of its noun phrases (size, colour, shape) and its relation (or place): 7 assertions for a
relation clause, 4 for a place. A noun phrase refers to the scene object that makes the most of its clause true
(the most charitable reading: a caption with one wrong colour loses exactly that colour's assertion). A clause
that does not parse is one false assertion. Scores over a split:

    assertion_acc   true assertions / assertions made (precision: what the captions say is so)
    object_recall   scene objects that some noun phrase names with all three attributes right / objects
    caption_acc     captions with every assertion true that name every object / captions

Held-out combinations (`unseen`, e.g. "red triangle"): no scene of train, val or test holds an object of such a
colour and shape; the extra split `test_unseen` has `unseen_images` scenes, each with at least one. Test scores
both (test/..., test_unseen/...): does the model compose a colour and a shape it never saw together?

Generated in memory, deterministic by `seed` (one random stream per split): the default 6500 scenes in about 2 s.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations, product

import numpy as np
import torch

from rnnlab.data.captions import CaptionDataModule, CaptionedImages
from rnnlab.errors import ConfigError, check_integer

SIZES = ("small", "large")
COLOURS = {"red": (220, 50, 50), "green": (60, 180, 75), "blue": (60, 100, 235), "yellow": (235, 215, 50),
           "white": (235, 235, 235)}
SHAPES = ("circle", "square", "triangle")
BACKGROUND = (25, 25, 30)
GRID = 3  # cells per side
ROWS, COLUMNS = ("top", "middle", "bottom"), ("left", "middle", "right")
RELATIONS = ("left of", "right of", "above", "below")
RADIUS = {"small": 0.24, "large": 0.42}  # of a cell's side
MIN_OBJECTS, MAX_OBJECTS = 1, GRID * GRID


def place_phrase(row: int, col: int) -> str:
    """"at the top left", "at the top", "in the middle", "at the right", ..."""
    if (row, col) == (1, 1):
        return "in the middle"
    words = [ROWS[row]] * (row != 1) + [COLUMNS[col]] * (col != 1)
    return "at the " + " ".join(words)


PLACES = {place_phrase(row, col): (row, col) for row, col in product(range(GRID), repeat=2)}


@dataclass(frozen=True)
class SceneObject:
    size: str
    colour: str
    shape: str
    row: int  # grid cell, 0 = top
    col: int  # 0 = left
    x: float  # centre in pixels
    y: float

    @property
    def looks(self) -> tuple[str, str, str]:
        return self.size, self.colour, self.shape

    def noun_phrase(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


Scene = tuple[SceneObject, ...]


# --- scenes and their pictures --------------------------------------------------------------------------------
def sample_scene(rng: random.Random, count: int, image_size: int, allowed: Sequence[tuple[str, str, str]],
                 required: Sequence[tuple[str, str, str]] = ()) -> Scene:
    """`count` objects that look unlike each other, in distinct cells: one of `required` looks (if given), the
    others of `allowed`."""
    looks = [rng.choice(required)] if required else []
    while len(looks) < count:
        candidate = rng.choice(allowed)
        if candidate not in looks:
            looks.append(candidate)
    rng.shuffle(looks)
    cells = rng.sample(range(GRID * GRID), count)
    cell = image_size / GRID
    objects = []
    for (size, colour, shape), index in zip(looks, cells):
        row, col = divmod(index, GRID)
        slack = max(cell / 2 - RADIUS[size] * cell - 1, 0)  # the object stays inside its cell
        x = (col + 0.5) * cell + rng.uniform(-slack, slack)
        y = (row + 0.5) * cell + rng.uniform(-slack, slack)
        objects.append(SceneObject(size, colour, shape, row, col, x, y))
    return tuple(sorted(objects, key=lambda o: (o.row, o.col)))  # reading order


def render(scene: Scene, image_size: int) -> torch.Tensor:
    """The scene as a uint8 image (3, H, W), H = W = image_size."""
    canvas = np.empty((image_size, image_size, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    cell = image_size / GRID
    for thing in scene:
        r = RADIUS[thing.size] * cell
        top, left = max(int(thing.y - r) - 1, 0), max(int(thing.x - r) - 1, 0)  # the object's bounding box
        bottom, right = min(int(thing.y + r) + 2, image_size), min(int(thing.x + r) + 2, image_size)
        y, x = np.mgrid[top:bottom, left:right] + 0.5  # pixel centres
        dx, dy = x - thing.x, y - thing.y
        if thing.shape == "circle":
            inside = dx**2 + dy**2 <= r**2
        elif thing.shape == "square":
            inside = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
        else:  # a triangle pointing up: apex at −r, base at +0.8 r, as wide as 2r at its base
            inside = (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) / 1.8)
        canvas[top:bottom, left:right][inside] = COLOURS[thing.colour]
    return torch.from_numpy(canvas).permute(2, 0, 1).contiguous()


# --- captions ---------------------------------------------------------------------------------------------------
def relation_of(a: SceneObject, b: SceneObject) -> str:
    """How a is said to stand to b, b after a in reading order: same row → left of, else above."""
    return "left of" if a.row == b.row else "above"


def flipped(relation: str) -> str:
    return {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[relation]


def holds(relation: str, a: SceneObject, b: SceneObject) -> bool:
    """Whether "a <relation> b" is true of the cells of a and b."""
    return {"left of": a.col < b.col, "right of": a.col > b.col, "above": a.row < b.row,
            "below": a.row > b.row}[relation]


def paraphrases(scene: Scene) -> list[str]:
    """Every caption the grammar gives the scene, the canonical one first (see the module docstring)."""
    if len(scene) == 1:
        (thing,) = scene
        place = place_phrase(thing.row, thing.col)
        return [f"{thing.noun_phrase()} {place}", f"there is {thing.noun_phrase()} {place}"]
    pairs = list(zip(scene, scene[1:]))
    captions = []
    for backwards, flips in product((False, True), product((False, True), repeat=len(pairs))):
        clauses = []
        for (a, b), flip in zip(pairs, flips):
            relation = relation_of(a, b)
            clauses.append(f"{b.noun_phrase()} {flipped(relation)} {a.noun_phrase()}" if flip
                           else f"{a.noun_phrase()} {relation} {b.noun_phrase()}")
        caption = " and ".join(reversed(clauses) if backwards else clauses)
        if caption not in captions:
            captions.append(caption)
    return captions


def choose_captions(rng: random.Random, scene: Scene, count: int) -> list[str]:
    """The canonical caption and count − 1 other paraphrases drawn at random (all of them if fewer)."""
    every = paraphrases(scene)
    return every[:1] + rng.sample(every[1:], min(count, len(every)) - 1)


# --- the checker ------------------------------------------------------------------------------------------------
@dataclass
class Assessment:
    """What one caption asserts about its scene, counted."""

    true: int = 0  # assertions that hold
    made: int = 0  # assertions made
    named: frozenset = frozenset()  # scene objects some noun phrase names with every attribute right
    objects: int = 0  # objects in the scene

    @property
    def correct(self) -> bool:
        return self.true == self.made and len(self.named) == self.objects


def parse_noun_phrase(words: list[str]) -> tuple[str, str | None, str | None] | None:
    """["a", size, colour, shape] → (size, colour, shape); None if it is not a noun phrase of the grammar (each slot
    holds a word of its kind, true of the scene or not: "a small green circle" parses, "a small circle red" not)."""
    if len(words) != 4 or words[0] != "a":
        return None
    size, colour, shape = words[1:]
    if size not in SIZES or colour not in COLOURS or shape not in SHAPES:
        return None
    return size, colour, shape


def _matches(phrase: tuple[str, ...], thing: SceneObject) -> int:
    return sum(said == seen for said, seen in zip(phrase, thing.looks))


def parse_clause(clause: str) -> tuple[tuple, str, tuple | None] | None:
    """A clause → (noun phrase, relation or place, second noun phrase or None), or None if it does not parse."""
    words = clause.split()
    if words[:2] == ["there", "is"]:
        words = words[2:]
    first = parse_noun_phrase(words[:4])
    if first is None:
        return None
    rest = " ".join(words[4:])
    if rest in PLACES:
        return first, rest, None
    for relation in RELATIONS:
        if rest.startswith(relation + " "):
            second = parse_noun_phrase(rest[len(relation) + 1:].split())
            return (first, relation, second) if second is not None else None
    return None


def check_caption(caption: str, scene: Scene) -> Assessment:
    """Count the assertions of a caption that hold in the scene (see the module docstring)."""
    assessment = Assessment(objects=len(scene))
    named = set()
    for clause in filter(None, (part.strip() for part in f" {caption} ".split(" and "))):
        parsed = parse_clause(clause)
        if parsed is None:
            assessment.made += 1
            continue
        first, link, second = parsed
        if second is None:  # a place: the object that best fits the phrase and stands there
            true, thing = max(((_matches(first, o) + (PLACES[link] == (o.row, o.col)), o) for o in scene),
                              key=lambda scored: scored[0])
            referents = [(first, thing)]
        elif len(scene) == 1:  # a relation needs two objects: it is false, the phrases still describe
            (thing,) = scene
            true, referents = _matches(first, thing) + _matches(second, thing), [(first, thing), (second, thing)]
        else:  # a relation: the pair of distinct objects that makes the most of the clause true
            true, a, b = max(((_matches(first, a) + _matches(second, b) + holds(link, a, b), a, b)
                              for a, b in permutations(scene, 2)), key=lambda scored: scored[0])
            referents = [(first, a), (second, b)]
        assessment.made += 4 if second is None else 7
        assessment.true += true
        named |= {thing for phrase, thing in referents if _matches(phrase, thing) == 3}
    assessment.named = frozenset(named)
    return assessment


def caption_scores(captions: Sequence[str], scenes: Sequence[Scene]) -> dict[str, float]:
    """assertion_acc, object_recall and caption_acc of captions against their scenes (aligned)."""
    assessments = [check_caption(caption, scene) for caption, scene in zip(captions, scenes)]
    made = sum(a.made for a in assessments)
    objects = sum(a.objects for a in assessments)
    return {"assertion_acc": sum(a.true for a in assessments) / made if made else 0.0,
            "object_recall": sum(len(a.named) for a in assessments) / objects if objects else 0.0,
            "caption_acc": sum(a.correct for a in assessments) / len(assessments) if assessments else 0.0}


# --- the data module ------------------------------------------------------------------------------------------
def parse_combinations(unseen: Sequence[str]) -> set[tuple[str, str]]:
    """["red triangle", ...] → {("red", "triangle"), ...}, each colour and shape checked."""
    combinations = set()
    for item in unseen or ():
        words = str(item).split()
        if len(words) != 2 or words[0] not in COLOURS or words[1] not in SHAPES:
            raise ConfigError(f"data.unseen has {item!r}: give \"<colour> <shape>\" pairs, colours "
                              f"{', '.join(COLOURS)}, shapes {', '.join(SHAPES)}")
        combinations.add((words[0], words[1]))
    return combinations


class SyntheticScenesDataModule(CaptionDataModule):
    """The scenes of the module docstring, rendered in memory; the captioning options are CaptionDataModule's."""

    option = "synthetic_scenes"

    def __init__(self, train_images: int = 5000, val_images: int = 500, test_images: int = 500,
                 unseen_images: int = 500, min_objects: int = 1, max_objects: int = 4, captions_per_image: int = 3,
                 unseen: Sequence[str] = ("red triangle", "green circle", "blue square"), image_size: int = 48,
                 **common: object):
        super().__init__(image_size=image_size, **common)
        for key, value, least in (("train_images", train_images, 1), ("val_images", val_images, 1),
                                  ("test_images", test_images, 1), ("unseen_images", unseen_images, 0),
                                  ("captions_per_image", captions_per_image, 1)):
            check_integer(f"data.{key}", value, least)
        if not (isinstance(min_objects, int) and isinstance(max_objects, int)
                and MIN_OBJECTS <= min_objects <= max_objects <= MAX_OBJECTS):
            raise ConfigError(f"data.min_objects={min_objects}, data.max_objects={max_objects} are invalid: need "
                              f"{MIN_OBJECTS} ≤ min_objects ≤ max_objects ≤ {MAX_OBJECTS} (one object per cell of "
                              f"the {GRID} × {GRID} grid)")
        if image_size < 4 * GRID:
            raise ConfigError(f"data.image_size={image_size} is too small to draw: at least {4 * GRID} pixels")
        held_out = parse_combinations(unseen)
        everything = list(product(SIZES, COLOURS, SHAPES))
        self.seen = [looks for looks in everything if looks[1:] not in held_out]
        self.unseen = [looks for looks in everything if looks[1:] in held_out]
        if len(self.seen) < max_objects:
            raise ConfigError(f"data.unseen holds back so many combinations that a scene of {max_objects} "
                              f"different objects cannot be drawn from the rest; hold back fewer")
        self.counts = {"train": train_images, "val": val_images, "test": test_images,
                       "test_unseen": unseen_images if self.unseen else 0}
        self.min_objects, self.max_objects, self.captions_per_image = min_objects, max_objects, captions_per_image
        self.scenes: dict[str, list[Scene]] = {}

    def load_splits(self) -> dict[str, CaptionedImages]:
        splits = {}
        for split, count in self.counts.items():
            if not count:
                continue
            rng = random.Random(f"{self.seed}/{split}")  # one stream per split, fixed by the seed
            required = self.unseen if split == "test_unseen" else ()
            scenes = [sample_scene(rng, rng.randint(self.min_objects, self.max_objects), self.image_size,
                                   self.seen, required) for _ in range(count)]
            self.scenes[split] = scenes
            splits[split] = CaptionedImages(
                images=torch.stack([render(scene, self.image_size) for scene in scenes]),
                captions=[choose_captions(rng, scene, self.captions_per_image) for scene in scenes],
                names=[f"{split}_{k:05d}" for k in range(count)])
        return splits

    # --- what the task asks ---------------------------------------------------------------------------------
    def caption_scores(self, split: str, hypotheses: dict[int, str]) -> dict[str, float]:
        """assertion_acc, object_recall, caption_acc of the hypotheses (by image index), and assertion_acc by the
        number of objects in the scene (assertion_acc/objects_<n>)."""
        def scores(indices: list[int]) -> dict[str, float]:
            return caption_scores([hypotheses[i] for i in indices], [self.scenes[split][i] for i in indices])

        by_group = {group: [i for i in members if i in hypotheses] for group, members in self.groups(split).items()}
        return scores(sorted(hypotheses)) | {f"assertion_acc/{group}": scores(members)["assertion_acc"]
                                             for group, members in by_group.items() if members}

    def groups(self, split: str) -> dict[str, list[int]]:
        """Image indices by the number of objects in their scene: objects_1, objects_2, ..."""
        groups: dict[str, list[int]] = {}
        for index, scene in enumerate(self.scenes[split]):
            groups.setdefault(f"objects_{len(scene)}", []).append(index)
        return dict(sorted(groups.items()))
