"""Drawing: every picture, frame and page is a plain description turned into pixels by pure functions.

Because a `Picture` or a video spec fully determines its pixels, rendering runs in a process pool in any
order and gives the same bytes for the same seed.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .motion import Video, mover_state
from .world import BACKGROUNDS, COLOURS, GRID, Scene

SCENE_SIZE = 96
CROP_SIZE = 40
RADIUS = {"small": 8, "large": 13}


@dataclass(frozen=True)
class Sprite:
    shape: str
    colour: str
    x: float
    y: float
    r: float


@dataclass(frozen=True)
class Label:
    """Text drawn on a white box (a sign in a scene)."""

    x: int
    y: int
    text: str
    font_size: int = 16


@dataclass(frozen=True)
class Picture:
    sprites: tuple[Sprite, ...]
    background: int = 0
    size: int = SCENE_SIZE
    labels: tuple[Label, ...] = ()
    crop: tuple[int, int, int, int] | None = None  # left, top, right, bottom


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def draw_sprite(draw: ImageDraw.ImageDraw, sprite: Sprite) -> None:
    x, y, r, fill = sprite.x, sprite.y, sprite.r, COLOURS[sprite.colour]
    if sprite.shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif sprite.shape == "square":
        s = r * 0.85
        draw.rectangle((x - s, y - s, x + s, y + s), fill=fill)
    elif sprite.shape == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r * 0.8), (x - r, y + r * 0.8)], fill=fill)
    elif sprite.shape == "diamond":
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill)
    elif sprite.shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((x + radius * math.cos(angle), y + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    elif sprite.shape == "cross":
        w = r * 0.35
        draw.rectangle((x - r, y - w, x + r, y + w), fill=fill)
        draw.rectangle((x - w, y - r, x + w, y + r), fill=fill)
    else:
        raise ValueError(f"unknown shape {sprite.shape!r}")


def draw_picture(picture: Picture) -> Image.Image:
    image = Image.new("RGB", (picture.size, picture.size), BACKGROUNDS[picture.background])
    draw = ImageDraw.Draw(image)
    for sprite in picture.sprites:
        draw_sprite(draw, sprite)
    for label in picture.labels:
        box = draw.textbbox((label.x, label.y), label.text, font=font(label.font_size))
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(255, 255, 255), outline=(0, 0, 0))
        draw.text((label.x, label.y), label.text, font=font(label.font_size), fill=(0, 0, 0))
    if picture.crop is not None:
        image = image.crop(picture.crop)
    return image


def scene_picture(scene: Scene, labels: tuple[Label, ...] = ()) -> Picture:
    cell = SCENE_SIZE / GRID
    sprites = tuple(Sprite(o.shape, o.colour, (o.col + 0.5) * cell + o.dx, (o.row + 0.5) * cell + o.dy, RADIUS[o.size])
                    for o in scene.objects)
    return Picture(sprites, scene.background, SCENE_SIZE, labels)


def crop_picture(scene: Scene, index: int) -> Picture:
    """A fixed-size window centred on one object (its size stays visible; neighbours may peek in)."""
    full = scene_picture(scene)
    sprite = full.sprites[index]
    half = CROP_SIZE // 2
    left = int(round(min(max(sprite.x - half, 0), SCENE_SIZE - CROP_SIZE)))
    top = int(round(min(max(sprite.y - half, 0), SCENE_SIZE - CROP_SIZE)))
    return Picture(full.sprites, full.background, SCENE_SIZE, (), (left, top, left + CROP_SIZE, top + CROP_SIZE))


def video_frame(video: Video, frame: int) -> Image.Image:
    from .motion import FRAME_SIZE

    sprites = []
    for mover in video.movers:
        x, y, r = mover_state(mover, frame, video.frames_per_segment)
        sprites.append(Sprite(mover.shape, mover.colour, x, y, r))
    return draw_picture(Picture(tuple(sprites), video.background, FRAME_SIZE))


# ---------------------------------------------------------------- pages

PAGE_SIZE = (224, 288)


@dataclass(frozen=True)
class Page:
    title: str
    lines: tuple[str, ...]
    paragraph: tuple[str, ...]


def draw_page(page: Page) -> Image.Image:
    image = Image.new("RGB", PAGE_SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((12, 10), page.title, font=font(17), fill=(10, 10, 60))
    draw.line((12, 34, PAGE_SIZE[0] - 12, 34), fill=(120, 120, 120), width=1)
    y = 42
    for line in page.lines:
        draw.text((14, y), line, font=font(12), fill=(0, 0, 0))
        y += 16
    y += 6
    for line in page.paragraph:
        if y > PAGE_SIZE[1] - 16:
            break
        draw.text((12, y), line, font=font(11), fill=(40, 40, 40))
        y += 14
    return image


# ---------------------------------------------------------------- jobs run in the pool

def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_job(job: tuple) -> tuple[str, bytes | None]:
    """Execute one render job; page jobs return PNG bytes (they go into parquet), the others write files."""
    kind, target = job[0], job[1]
    if kind == "picture":
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_picture(job[2]).save(path, format="PNG")
        return target, None
    if kind == "video":
        folder, video, start, stop = Path(target), job[2], job[3], job[4]
        folder.mkdir(parents=True, exist_ok=True)
        for out_index, frame in enumerate(range(start, stop)):
            video_frame(video, frame).save(folder / f"frame_{out_index:04d}.jpg", format="JPEG", quality=90)
        return target, None
    if kind == "page":
        return target, png_bytes(draw_page(job[2]))
    if kind == "page_file":
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_page(job[2]).save(path, format="PNG")
        return target, None
    raise ValueError(f"unknown render job {kind!r}")
