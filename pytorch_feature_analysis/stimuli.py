"""Images in: loading, preprocessing, image sets and synthetic stimuli.

An *image set* is what becomes one RDM. As in the original library it is a
tuple of four parts::

    (labels, images, entry_variables, combinations)

* ``labels`` -- a dict describing the whole set, e.g. ``{'obj': 'obj001'}``;
  each key becomes a column of the RDM frame;
* ``images`` -- a dict ``{entry_key: image}``; an entry key is a tuple of the
  values of the entry variables, e.g. ``('090',)``, and an image is a file
  path, a :class:`PIL.Image.Image` or a numpy array;
* ``entry_variables`` -- the names of the values in the entry keys, e.g.
  ``('color',)``;
* ``combinations`` -- usually ``[]``; otherwise entries made by combining the
  activation patterns of several images (see :func:`pytorch_feature_analysis.get_rdms`).
"""

from __future__ import annotations

import colorsys
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError
from torchvision.transforms import v2

from ._validation import InvalidInputError, check_int, fail, public

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "default_transform",
    "load_image",
    "preprocess_images",
    "package_image_sets",
    "make_synthetic_stimuli",
    "save_synthetic_stimuli",
]

# Video entries (see :mod:`pytorch_feature_analysis.video`) need a video transform.
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv")
_VIDEO_HINT = (" A video (frames array, list of frames or video file) needs a video "
               "transform, e.g. transform=pfa.video_transform('r3d_18').")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _DefaultTransform(v2.Compose):
    """:func:`default_transform`'s steps; :func:`preprocess_images` batches the last three."""

    def __init__(self, size: int) -> None:
        super().__init__(
            [
                v2.Resize(size),
                v2.CenterCrop(size),
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(IMAGENET_MEAN, IMAGENET_STD, inplace=True),  # on ToDtype's copy
            ]
        )
        self.size = size

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Every image transformed, stacked; the steps after the crop run once per batch."""
        geometry, values = v2.Compose(self.transforms[:2]), v2.Compose(self.transforms[2:])
        pixels = np.stack([np.asarray(geometry(image), dtype=np.uint8) for image in images])
        batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        return values(batch).as_subclass(torch.Tensor)


@public
def default_transform(size: int = 224) -> v2.Compose:
    """The standard preprocessing, made safe for batches (``torchvision.transforms.v2``).

    Resize the shorter side to ``size`` (bilinear, antialiased), crop the
    centre ``size`` x ``size`` square (so every image of a batch has the same
    shape), convert to floats in [0, 1] and normalise with the ImageNet mean
    and standard deviation. :func:`preprocess_images` gives the same result
    for a whole batch at once.

    Parameters
    ----------
    size : int, default 224
        Width and height of the output, in pixels.

    Returns
    -------
    torchvision.transforms.v2.Compose
        Takes an RGB PIL image; returns a float32 tensor ``(3, size, size)``.

    Examples
    --------
    >>> from PIL import Image
    >>> default_transform()(Image.new('RGB', (300, 200))).shape
    torch.Size([3, 224, 224])
    >>> default_transform(64)(Image.new('RGB', (300, 200))).shape
    torch.Size([3, 64, 64])
    """
    return _DefaultTransform(check_int(size, "size", minimum=1))


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.size == 0:
        raise InvalidInputError(f"An image array must hold pixels; got shape {array.shape} instead.")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InvalidInputError(
            "An image array must be H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA); "
            f"got shape {array.shape} instead.{_VIDEO_HINT if array.ndim == 4 else ''}"
        )
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if array.dtype == np.uint16:  # 16 bits per channel: scale 0..65535 to 0..255
        return Image.fromarray(np.round(array / 257.0).astype(np.uint8))
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise InvalidInputError(
                "A floating-point image array must hold values in [0, 1]; got NaN or "
                "infinite values instead."
            )
        if array.min() < 0 or array.max() > 1:
            raise InvalidInputError(
                "A floating-point image array must hold values in [0, 1]; got values in "
                f"[{array.min():.3g}, {array.max():.3g}] instead."
            )
        return Image.fromarray(np.round(array * 255).astype(np.uint8))
    raise InvalidInputError(
        f"An image array must be uint8, uint16 or floating point in [0, 1]; got dtype {array.dtype} "
        "instead."
    )


def _pil_to_rgb(image: Image.Image) -> Image.Image:
    # PIL's own conversion clips 16-bit ('I;16', or 'I' for a 16-bit PNG) and
    # float ('F') greyscale at 255, turning most of the image white.
    if image.mode.startswith("I;16") or image.mode == "I":
        array = np.asarray(image).astype(np.int64)
        if array.min() < 0 or array.max() > 65535:
            raise InvalidInputError(
                f"A {image.mode!r} image must hold 16-bit values in [0, 65535]; got values in "
                f"[{array.min()}, {array.max()}] instead."
            )
        return _array_to_pil(array.astype(np.uint16)).convert("RGB")
    if image.mode == "F":
        return _array_to_pil(np.asarray(image)).convert("RGB")
    return image.convert("RGB")


@public
def load_image(image: Any) -> Image.Image:
    """Any supported image as an RGB :class:`PIL.Image.Image`.

    Parameters
    ----------
    image : str, path-like, PIL.Image.Image or numpy.ndarray
        A file path; a PIL image (any mode); or an array H x W, H x W x 3 or
        H x W x 4, of dtype uint8, uint16 or floating point in [0, 1].
        16-bit images (uint16 arrays, and 'I;16' or 'I' PIL images, as 16-bit
        greyscale PNG and TIFF files open) are scaled from [0, 65535] to 8
        bits; 'F' PIL images must hold values in [0, 1].

    Returns
    -------
    PIL.Image.Image
        In RGB mode.

    Raises
    ------
    FileNotFoundError
        A path that does not exist; the message names it.
    InvalidInputError
        A file that is not a readable image, or an array of the wrong shape
        or type; the message names the file or the shape.

    Examples
    --------
    >>> import numpy as np
    >>> load_image(np.zeros((8, 8, 3), dtype=np.uint8)).mode
    'RGB'
    """
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        return _array_to_pil(image).convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Image file {path!r} does not exist.")
        try:
            with Image.open(path) as opened:
                return _pil_to_rgb(opened)
        except (UnidentifiedImageError, OSError) as error:
            hint = _VIDEO_HINT if path.lower().endswith(_VIDEO_SUFFIXES) else ""
            raise InvalidInputError(
                f"Image file {path!r} could not be read as an image: {error}{hint}") from error
    raise InvalidInputError(
        "An image must be a file path, a PIL image or a numpy array; got "
        f"{type(image).__name__} instead.{_VIDEO_HINT if isinstance(image, list) else ''}"
    )


@public
def check_images_exist(images: Iterable[Any]) -> None:
    """Raise before long work starts if an image file is missing or is not an image.

    Each file's header is read (its format and size, not its pixels), so a
    file that is not an image fails the call before the first forward pass,
    with its name.

    Examples
    --------
    >>> check_images_exist(['/no/such/image.png'])
    Traceback (most recent call last):
    ...
    FileNotFoundError: Image file '/no/such/image.png' does not exist.
    """
    for image in images:
        if not isinstance(image, (str, os.PathLike)):
            continue
        if os.fspath(image).lower().endswith(_VIDEO_SUFFIXES):
            from .video import check_video_file

            check_video_file(image)
            continue
        if not os.path.isfile(image):
            raise FileNotFoundError(f"Image file {os.fspath(image)!r} does not exist.")
        try:
            with Image.open(image) as opened:
                opened.size  # the header only
        except (UnidentifiedImageError, OSError) as error:
            raise InvalidInputError(
                f"The image file {os.fspath(image)!r} must be an image PIL can read; reading "
                f"its header failed with {type(error).__name__}: {error}"
            ) from error


@public
def preprocess_images(images: Sequence[Any], transform: Any = None) -> torch.Tensor:
    """Load and preprocess images into one batch tensor.

    Parameters
    ----------
    images : sequence
        Images as accepted by :func:`load_image`.
    transform : callable, optional
        Takes an RGB PIL image and returns a tensor. Every image must come out
        the same shape. A transform with a ``preprocess_batch`` method (such
        as :func:`~pytorch_feature_analysis.video_transform`) is given the
        entries as they are and returns the batch itself (videos: ``(n, 3,
        time, height, width)``). Default: :func:`default_transform` ``()``. The
        transforms :func:`default_transform` makes, of any size, run their
        conversion to floats and normalisation once for the whole batch (the
        same values, exactly).

    Returns
    -------
    torch.Tensor
        Shape ``(len(images), channels, height, width)``, float32.

    Raises
    ------
    InvalidInputError
        When the transform gives the images different shapes.

    Examples
    --------
    >>> from PIL import Image
    >>> preprocess_images([Image.new('RGB', (64, 48))] * 2).shape
    torch.Size([2, 3, 224, 224])
    >>> preprocess_images([Image.new('RGB', (64, 48))], default_transform(32)).shape
    torch.Size([1, 3, 32, 32])
    """
    transform = default_transform() if transform is None else transform
    if hasattr(transform, "preprocess_batch"):
        return transform.preprocess_batch(images)
    loaded = [load_image(image) for image in images]
    if isinstance(transform, _DefaultTransform):
        return transform.batch(loaded)
    tensors = [transform(image) for image in loaded]
    wrong = [t for t in tensors if not isinstance(t, torch.Tensor) or t.ndim != 3]
    if wrong:
        shown = f"shape {tuple(wrong[0].shape)}" if isinstance(wrong[0], torch.Tensor) else (
            f"a {type(wrong[0]).__name__}")
        raise fail("transform", "a callable returning a (channels, height, width) tensor per "
                   "image", shown, raw=True)
    shapes = {tuple(tensor.shape) for tensor in tensors}
    if len(shapes) > 1:
        raise fail(
            "transform",
            "a transform giving every image the same shape (crop or resize to a fixed size)",
            f"shapes {sorted(shapes)}",
            raw=True,
        )
    return torch.stack(tensors)


@public
def validate_image_set(image_set: Any, position: int | None = None) -> None:
    """Check one image set's structure; the error says what is wrong.

    Examples
    --------
    >>> validate_image_set(({'obj': 'a'}, {('red',): 'a.png', ('blue',): 'b.png'}, ('color',), []))
    >>> validate_image_set(({'obj': 'a'}, {('red',): 'a.png'}, ('color',), []))
    Traceback (most recent call last):
    ...
    pytorch_feature_analysis._validation.InvalidInputError: Image set {'obj': 'a'} has 1 entry; an RDM needs at least 2.
    """
    where = f"Image set {position}" if position is not None else "An image set"
    if not isinstance(image_set, (tuple, list)) or len(image_set) != 4:
        raise InvalidInputError(
            f"{where} must be a tuple (labels dict, {{entry_key: image}}, entry variable "
            f"names, combinations list); got {image_set!r:.200} instead."
        )
    labels, images, entry_variables, combinations = image_set
    if not isinstance(labels, dict):
        raise InvalidInputError(f"{where}: its labels must be a dict; got {labels!r} instead.")
    where = f"Image set {dict(labels)}"
    if not isinstance(images, dict):
        raise InvalidInputError(f"{where}: its images must be a dict {{entry_key: image}}.")
    num_entries = len(images) + len(combinations or [])
    if num_entries < 2:
        raise InvalidInputError(
            f"{where} has {num_entries} {'entry' if num_entries == 1 else 'entries'}; "
            "an RDM needs at least 2."
        )
    if isinstance(entry_variables, str):
        raise InvalidInputError(
            f"{where}: entry variable names must be a tuple such as ({entry_variables!r},); "
            f"got the string {entry_variables!r} instead."
        )
    for key in images:
        if not isinstance(key, tuple) or len(key) != len(entry_variables):
            raise InvalidInputError(
                f"{where}: entry key {key!r} must be a tuple of {len(entry_variables)} "
                f"value(s), one per entry variable {tuple(entry_variables)}."
            )


@public
def package_image_sets(
    image_list: Sequence[dict], entry_vars: Sequence[str], grouping_vars: Sequence[str]
) -> list[tuple]:
    """Build image sets from a list of image descriptions.

    Parameters
    ----------
    image_list : list of dict
        One dict per image, with a ``'path'`` key (or any image accepted by
        :func:`load_image` under that key) and one key per variable.
    entry_vars : list of str
        Variables that vary *within* an RDM (its entries).
    grouping_vars : list of str
        Variables that vary *between* RDMs (one image set per combination).

    Returns
    -------
    list of tuple
        Image sets ``(labels, images, entry_vars, [])``, in order of first
        appearance, ready for :func:`pytorch_feature_analysis.get_rdms`.

    Raises
    ------
    InvalidInputError
        An image without ``'path'``; variables that are not exactly the
        entry and grouping variables; two images with the same entry key in
        one set.

    Examples
    --------
    >>> image_list = [{'color': 'red', 'shape': 'square', 'path': 'red_square.jpg'},
    ...               {'color': 'blue', 'shape': 'square', 'path': 'blue_square.jpg'},
    ...               {'color': 'red', 'shape': 'circle', 'path': 'red_circle.jpg'},
    ...               {'color': 'blue', 'shape': 'circle', 'path': 'blue_circle.jpg'}]
    >>> sets = package_image_sets(image_list, ['shape'], ['color'])
    >>> labels, images, entry_variables, combinations = sets[0]
    >>> dict(labels), dict(images), entry_variables, combinations
    ({'color': 'red'}, {('square',): 'red_square.jpg', ('circle',): 'red_circle.jpg'}, ('shape',), [])
    """
    entry_vars = [entry_vars] if isinstance(entry_vars, str) else list(entry_vars)
    grouping_vars = [grouping_vars] if isinstance(grouping_vars, str) else list(grouping_vars)
    overlap = set(entry_vars) & set(grouping_vars)
    if overlap:
        raise InvalidInputError(
            f"Variables {sorted(overlap)} cannot be both entry and grouping variables."
        )
    expected = set(entry_vars) | set(grouping_vars)
    sets: "OrderedDict[tuple, tuple]" = OrderedDict()
    for position, image in enumerate(image_list):
        if not isinstance(image, dict) or "path" not in image:
            raise InvalidInputError(
                f"Image {position} of image_list must be a dict with a 'path' key; got "
                f"{image!r} instead."
            )
        variables = set(image) - {"path"}
        if variables != expected:
            raise InvalidInputError(
                f"Image {position} ({image['path']!r}) has variables {sorted(variables)}, "
                f"but entry_vars + grouping_vars are {sorted(expected)}; they must match "
                "exactly."
            )
        labels = OrderedDict((var, image[var]) for var in grouping_vars)
        group = tuple(labels.values())
        if group not in sets:
            sets[group] = (labels, OrderedDict(), tuple(entry_vars), [])
        key = tuple(image[var] for var in entry_vars)
        if key in sets[group][1]:
            raise InvalidInputError(
                f"Two images share the entry key {key!r} in the image set {dict(labels)}: "
                f"{sets[group][1][key]!r} and {image['path']!r}."
            )
        sets[group][1][key] = image["path"]
    return list(sets.values())


_SHAPES = ("disc", "square", "triangle", "diamond", "cross", "ring", "star", "bar")


def _shape_polygon(shape: str, size: int) -> list[tuple[float, float]] | None:
    c, r = size / 2, size * 0.34
    if shape == "triangle":
        return [(c, c - r), (c + r, c + r * 0.8), (c - r, c + r * 0.8)]
    if shape == "diamond":
        return [(c, c - r), (c + r * 0.7, c), (c, c + r), (c - r * 0.7, c)]
    if shape == "star":
        angles = np.linspace(-np.pi / 2, 3 * np.pi / 2, 11)[:-1]
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        return [(c + rad * np.cos(a), c + rad * np.sin(a)) for a, rad in zip(angles, radii)]
    if shape == "cross":
        w = r * 0.35
        return [
            (c - w, c - r), (c + w, c - r), (c + w, c - w), (c + r, c - w), (c + r, c + w),
            (c + w, c + w), (c + w, c + r), (c - w, c + r), (c - w, c + w), (c - r, c + w),
            (c - r, c - w), (c - w, c - w),
        ]
    return None


def _draw_object(shape: str, rgb: tuple[int, int, int], size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    c, r = size / 2, size * 0.34
    box = (c - r, c - r, c + r, c + r)
    polygon = _shape_polygon(shape, size)
    if polygon is not None:
        draw.polygon(polygon, fill=rgb)
    elif shape == "disc":
        draw.ellipse(box, fill=rgb)
    elif shape == "square":
        draw.rectangle(box, fill=rgb)
    elif shape == "ring":
        draw.ellipse(box, fill=rgb)
        inner = r * 0.5
        draw.ellipse((c - inner, c - inner, c + inner, c + inner), fill=(255, 255, 255))
    else:  # bar
        draw.rectangle((c - r, c - r * 0.3, c + r, c + r * 0.3), fill=rgb)
    return image


@public
def make_synthetic_stimuli(
    num_objects: int = 4,
    colors: Sequence[int] = (0, 90, 180, 270),
    size: int = 224,
) -> list[dict]:
    """Coloured objects on white, like the user guide's study.

    Object ``i`` is a filled shape (disc, square, triangle, ...); its colour
    is a rotation of the hue wheel by each angle in ``colors``.

    Parameters
    ----------
    num_objects : int, default 4
        How many objects (at most 8 distinct shapes).
    colors : sequence of int, default (0, 90, 180, 270)
        Hue rotations in degrees.
    size : int, default 224
        Width and height of each image in pixels.

    Returns
    -------
    list of dict
        One dict per image: ``{'obj': 'obj001', 'color': '090', 'path': PIL image}``,
        ready for :func:`package_image_sets`.

    Examples
    --------
    >>> stimuli = make_synthetic_stimuli(2, colors=(0, 180), size=32)
    >>> [(s['obj'], s['color']) for s in stimuli]
    [('obj001', '000'), ('obj001', '180'), ('obj002', '000'), ('obj002', '180')]
    >>> stimuli[0]['path'].size
    (32, 32)
    """
    check_int(num_objects, "num_objects", minimum=1, maximum=len(_SHAPES))
    stimuli = []
    for index in range(num_objects):
        for angle in colors:
            hue = (angle % 360) / 360.0
            rgb = tuple(int(round(255 * v)) for v in colorsys.hsv_to_rgb(hue, 0.85, 0.9))
            stimuli.append(
                {
                    "obj": f"obj{index + 1:03d}",
                    "color": f"{int(angle):03d}",
                    "path": _draw_object(_SHAPES[index], rgb, size),
                }
            )
    return stimuli


@public
def save_synthetic_stimuli(out_dir: str | os.PathLike, **kwargs) -> list[dict]:
    """Write :func:`make_synthetic_stimuli` images to PNG files.

    Parameters
    ----------
    out_dir : path-like
        Folder to write into (created if needed); files are named
        ``<obj>_<color>deg.png``.
    **kwargs
        Passed to :func:`make_synthetic_stimuli`.

    Returns
    -------
    list of dict
        As :func:`make_synthetic_stimuli`, with ``'path'`` the file path (str).

    Examples
    --------
    >>> import tempfile
    >>> stimuli = save_synthetic_stimuli(tempfile.mkdtemp(), num_objects=1, size=16)
    >>> stimuli[0]['path'].endswith('obj001_000deg.png')
    True
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    for stimulus in make_synthetic_stimuli(**kwargs):
        path = out_dir / f"{stimulus['obj']}_{stimulus['color']}deg.png"
        stimulus["path"].save(path)
        saved.append({**stimulus, "path": str(path)})
    return saved
