"""Plain-English captions of a scene record, several per image with varied phrasing (like COCO's five).

Every caption is generated from the attribute record only, so it is true of the image by
construction; the variety (templates, word choice, what is mentioned) comes from a per-scene RNG.
"""

from __future__ import annotations

import random

POSITION_WORDS = {
    ("top", "left"): ("in the top left corner", "at the top left", "in the upper left"),
    ("top", "center"): ("at the top", "near the top", "at the top center"),
    ("top", "right"): ("in the top right corner", "at the top right", "in the upper right"),
    ("middle", "left"): ("on the left", "on the left side", "at the left"),
    ("middle", "center"): ("in the center", "in the middle", "at the center"),
    ("middle", "right"): ("on the right", "on the right side", "at the right"),
    ("bottom", "left"): ("in the bottom left corner", "at the bottom left", "in the lower left"),
    ("bottom", "center"): ("at the bottom", "near the bottom", "at the bottom center"),
    ("bottom", "right"): ("in the bottom right corner", "at the bottom right", "in the lower right"),
}

BACKGROUND_WORDS = {
    "solid": ("a plain {c} background", "a solid {c} background", "a {c} background"),
    "gradient": (
        "a {c} gradient background",
        "a softly shaded {c} background",
        "a {c} background with a gradient",
    ),
    "stripes": ("a {c} background with {o} stripes", "a {o} striped {c} background", "{o} {c} stripes"),
    "checker": ("a {c} checkered background", "a {c} checkerboard", "a {c} checkerboard pattern"),
    "texture": (
        "a mottled {c} background",
        "a textured {c} background",
        "a {c} background with a blotchy texture",
    ),
}

COUNT_WORDS = {1: "one", 2: "two", 3: "three"}

ONE = (
    "{Obj} {pos} on {bg}",
    "{Obj} on {bg}",
    "{Bg} with {obj} {pos}",
    "There is {obj} {pos}",
    "A picture of {obj} against {bg}",
    "An image showing {obj} {pos}",
    "{Obj} {pos}",
    "A single {plain} on {bg}",
)
MANY = (
    "{Count} shapes on {bg}: {list}",
    "{List} on {bg}",
    "{Placed}",
    "{Bg} with {list}",
    "{Relation}",
    "An image with {count} objects: {list}",
    "There are {count} shapes, {list}",
    "{Relation} on {bg}",
)


def article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def object_phrase(obj: dict, rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:
        return article(f"{obj['size']} {obj['color']} {obj['shape']}")
    if style == 1:
        return article(f"{obj['color']} {obj['shape']}")
    return article(f"{obj['size']} {obj['shape']}") + f" in {obj['color']}"


def background_phrase(bg: dict, rng: random.Random) -> str:
    template = rng.choice(BACKGROUND_WORDS[bg["kind"]])
    return template.format(c=bg["color"], o=bg.get("orientation", ""))


def position_phrase(obj: dict, rng: random.Random) -> str:
    return rng.choice(POSITION_WORDS[(obj["row"], obj["col"])])


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def relation_phrase(objs: list[dict], phrases: list[str]) -> str:
    """Relate the two objects furthest apart along one axis ("left of", "above"...)."""
    best = None
    for i in range(len(objs)):
        for j in range(len(objs)):
            if i == j:
                continue
            dx, dy = objs[j]["x"] - objs[i]["x"], objs[j]["y"] - objs[i]["y"]
            score = max(abs(dx), abs(dy))
            if dx > 0 and abs(dx) >= abs(dy) or dy > 0 and abs(dy) > abs(dx):
                if best is None or score > best[0]:
                    best = (score, i, j, "to the left of" if abs(dx) >= abs(dy) else "above")
    _, i, j, rel = best
    text = f"{phrases[i]} {rel} {phrases[j]}"
    rest = [phrases[k] for k in range(len(objs)) if k not in (i, j)]
    return text + (f", with {rest[0]}" if rest else "")


def describe(record: dict, rng: random.Random, k: int = 5) -> list[str]:
    """``k`` distinct captions of one scene record."""
    objs = record["objects"]
    templates = ONE if len(objs) == 1 else MANY
    chosen = rng.sample(range(len(templates)), min(k, len(templates)))
    out: list[str] = []
    for t in chosen:
        phrases = [object_phrase(o, rng) for o in objs]
        bg = background_phrase(record["background"], rng)
        fields = {
            "obj": phrases[0],
            "Obj": _cap(phrases[0]),
            "plain": f"{objs[0]['color']} {objs[0]['shape']}",
            "pos": position_phrase(objs[0], rng),
            "bg": bg,
            "Bg": _cap(bg),
            "count": COUNT_WORDS[len(objs)],
            "Count": _cap(COUNT_WORDS[len(objs)]),
            "list": _join(phrases),
            "List": _cap(_join(phrases)),
        }
        if len(objs) > 1:
            fields["Placed"] = _cap(
                _join([f"{p} {position_phrase(o, rng)}" for p, o in zip(phrases, objs, strict=True)])
            )
            fields["Relation"] = _cap(relation_phrase(objs, phrases))
        out.append(templates[t].format(**fields))
    return out
