"""Stimuli in time: synthetic moving stimuli, video loading and video preprocessing.

A *video* can stand wherever an image stands in an image set (see
:mod:`pytorch_feature_analysis.stimuli`): a ``(time, height, width, channel)``
array (``uint8``, or floats in [0, 1]; a ``(time, height, width)`` array is
grey), a list of frames (anything :func:`~pytorch_feature_analysis.load_image`
reads), or a video file PyAV can decode (``.mp4``, ``.avi``, ``.mkv``, ...).
Videos run through a video model with the model's own preprocessing,
:func:`video_transform`, passed as ``transform``::

    get_rdms(image_sets, {'r3d': ('r3d_18', 'trained')}, None,
             transform=video_transform('r3d_18'))

Every clip is cut to its first ``num_frames`` frames, so every entry of a
call has the same length; a shorter clip is an error naming its length.
(In :func:`~pytorch_feature_analysis.unit_anova` designs a list stands for
the replicates of a cell: give videos there as arrays or files.)

Synthetic stimuli (:func:`moving_grating`, :func:`moving_bar`) are float
arrays ``(time, height, width, 3)`` in [0, 1], with speeds in degrees of
visual angle per second, converted to pixels and frames by
``pixels_per_degree`` and ``fps``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.special import ndtr
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import VideoClassification
from torchvision.transforms import functional as F

from ._validation import check_int, check_number, describe, fail, problem, public
from .stimuli import _VIDEO_SUFFIXES, load_image

__all__ = [
    "VIDEO_SUFFIXES",
    "moving_grating",
    "moving_bar",
    "load_video",
    "video_transform",
    "VideoTransform",
]

#: File name endings read as videos (with PyAV) rather than as images.
VIDEO_SUFFIXES = _VIDEO_SUFFIXES


def _visual_field(num_frames: int, height: int, width: int, fps: float,
                  pixels_per_degree: float, direction: float) -> tuple:
    """Frame times (s), pixel positions (deg) along ``direction``, the image radius (deg).

    Pixel centres are measured from the image centre, x to the right and y
    upwards; ``direction`` is in degrees counter-clockwise from rightwards.
    The radius is half the image's diagonal, in degrees.
    """
    num_frames = check_int(num_frames, "num_frames", minimum=1)
    height = check_int(height, "height", minimum=1)
    width = check_int(width, "width", minimum=1)
    fps = check_number(fps, "fps", minimum=0, exclusive_minimum=True)
    ppd = check_number(pixels_per_degree, "pixels_per_degree", minimum=0, exclusive_minimum=True)
    angle = np.deg2rad(check_number(direction, "direction"))
    x = (np.arange(width) - (width - 1) / 2) / ppd
    y = -(np.arange(height) - (height - 1) / 2) / ppd
    along = np.cos(angle) * x[None, :] + np.sin(angle) * y[:, None]
    return np.arange(num_frames) / fps, along, np.hypot(height, width) / (2 * ppd)


def _as_rgb(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1).astype(np.float32)


@public
def moving_grating(
    num_frames: int = 16,
    height: int = 32,
    width: int = 32,
    *,
    spatial_frequency: float = 0.5,
    speed: float = 2.0,
    direction: float = 0.0,
    contrast: float = 1.0,
    phase: float = 0.0,
    fps: float = 25.0,
    pixels_per_degree: float = 8.0,
) -> np.ndarray:
    """A drifting sinusoidal grating, as Convis's ``moving_grating``.

    Frame ``t`` (at ``t / fps`` seconds), pixel at ``d`` degrees from the
    image centre along ``direction``::

        0.5 + 0.5 * contrast * cos(2 pi * spatial_frequency * (d - speed * t / fps) + phase)

    Parameters
    ----------
    num_frames, height, width : int, default 16, 32, 32
        The stimulus' size in frames and pixels.
    spatial_frequency : float, default 0.5
        Cycles per degree.
    speed : float, default 2.0
        Degrees per second the stripes drift (negative: backwards).
    direction : float, default 0.0
        Direction of the drift, degrees counter-clockwise from rightwards
        (90: upwards).
    contrast : float, default 1.0
        Michelson contrast, in [0, 1].
    phase : float, default 0.0
        Phase at the image centre in the first frame, radians.
    fps : float, default 25.0
        Frames per second.
    pixels_per_degree : float, default 8.0
        Pixels per degree of visual angle.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(num_frames, height, width, 3)``, values in [0, 1]
        (the three channels are equal).

    Examples
    --------
    >>> grating = moving_grating(4, 8, 8, spatial_frequency=1.0, speed=2.0, fps=8.0)
    >>> grating.shape
    (4, 8, 8, 3)
    >>> bool(np.allclose(grating[2], np.roll(grating[0], 4, axis=1), atol=1e-6))  # 2 px a frame
    True
    """
    times, along, _ = _visual_field(num_frames, height, width, fps, pixels_per_degree,
                                    direction)
    frequency = check_number(spatial_frequency, "spatial_frequency", minimum=0,
                             exclusive_minimum=True)
    contrast = check_number(contrast, "contrast", minimum=0, maximum=1)
    shift = check_number(speed, "speed") * times[:, None, None]
    cycles = 2 * np.pi * frequency * (along[None] - shift) + check_number(phase, "phase")
    return _as_rgb(0.5 + 0.5 * contrast * np.cos(cycles))


@public
def moving_bar(
    num_frames: int = 16,
    height: int = 32,
    width: int = 32,
    *,
    bar_width: float = 1.0,
    speed: float = 4.0,
    direction: float = 0.0,
    start: float | None = None,
    temporal_smoothing: float = 0.0,
    fps: float = 25.0,
    pixels_per_degree: float = 8.0,
) -> np.ndarray:
    """A bright bar on black moving across the image, as Convis's ``moving_bar``.

    The bar is perpendicular to ``direction`` and its centre is at
    ``start + speed * t / fps`` degrees from the image centre along
    ``direction`` in frame ``t``. A pixel at ``d`` degrees is 1 while
    ``|d - centre| <= bar_width / 2``, else 0. With ``temporal_smoothing``
    ``s > 0`` this on/off time course is convolved with a Gaussian of
    standard deviation ``s`` seconds, exactly::

        Phi((offset + bar_width / 2) / (speed * s)) - Phi((offset - bar_width / 2) / (speed * s))

    with ``offset = centre - d`` and ``Phi`` the standard normal CDF, so
    edges blur more for faster bars.

    Parameters
    ----------
    num_frames, height, width : int, default 16, 32, 32
        The stimulus' size in frames and pixels.
    bar_width : float, default 1.0
        Degrees.
    speed : float, default 4.0
        Degrees per second (negative: backwards).
    direction : float, default 0.0
        Direction of motion, degrees counter-clockwise from rightwards.
    start : float, optional
        Bar centre in the first frame, degrees from the image centre along
        ``direction``; default just outside the image (half its diagonal
        plus half the bar behind the centre, on the side it comes from).
    temporal_smoothing : float, default 0.0
        Standard deviation of the Gaussian in time, seconds; 0: sharp.
    fps : float, default 25.0
        Frames per second.
    pixels_per_degree : float, default 8.0
        Pixels per degree of visual angle.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(num_frames, height, width, 3)``, values in [0, 1].

    Examples
    --------
    >>> bar = moving_bar(3, 4, 8, bar_width=0.25, speed=2.0, start=-0.375, fps=8.0,
    ...                  pixels_per_degree=4.0)
    >>> bar[:, 0, :, 0].astype(int)
    array([[0, 0, 1, 0, 0, 0, 0, 0],
           [0, 0, 0, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 1, 0, 0, 0]])
    """
    times, along, radius = _visual_field(num_frames, height, width, fps, pixels_per_degree,
                                         direction)
    half = check_number(bar_width, "bar_width", minimum=0, exclusive_minimum=True) / 2
    speed = check_number(speed, "speed")
    smoothing = check_number(temporal_smoothing, "temporal_smoothing", minimum=0,
                             what="seconds")
    if start is None:
        start = -np.sign(speed or 1) * (radius + half)
    centre = check_number(start, "start") + speed * times[:, None, None]
    offset = centre - along[None]
    if smoothing == 0 or speed == 0:
        return _as_rgb((np.abs(offset) <= half).astype(np.float64))
    scale = abs(speed) * smoothing
    return _as_rgb(ndtr((offset + half) / scale) - ndtr((offset - half) / scale))


def _bad_video(expected: str, got: str) -> Exception:
    """The error for a bad video, wherever it is read (load_video, an image set entry)."""
    return problem(f"a video must be {expected}; got {got} instead.")


def _video_array(array: np.ndarray) -> np.ndarray:
    """A ``(T, H, W, 3)`` uint8 or float array from a video array, checked."""
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or 0 in array.shape:
        raise _bad_video("an array (time, height, width) or (time, height, width, 1 or 3)",
                         f"shape {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise _bad_video("a uint8 array or floats in [0, 1]", f"dtype {array.dtype}")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise _bad_video("a uint8 array or floats in [0, 1]",
                         f"values in [{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]")
    return array


def _pyav(path: str) -> Any:
    """The ``av`` module, once ``path`` is known to be a file (errors name the file, the extra)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Video file {path!r} does not exist.")
    try:
        import av
    except ImportError as error:  # the optional 'video' extra
        raise ImportError("Reading video files needs PyAV: pip install "
                          "'pytorch_feature_analysis[video]'.") from error
    return av


def _read_video_file(path: str) -> np.ndarray:
    """Every frame of a video file as a ``(T, H, W, 3)`` uint8 array (PyAV)."""
    av = _pyav(path)
    try:
        with av.open(path) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.FFmpegError, IndexError, ValueError) as error:
        raise _bad_video("a video file PyAV can decode", f"{path!r} ({error})") from error
    if not frames:
        raise _bad_video("a video file with at least one frame", repr(path))
    return np.stack(frames)


def check_video_file(path: str | os.PathLike) -> None:
    """Raise, naming the file, if ``path`` is missing or PyAV cannot open its video stream.

    Only the container's header is read.

    Examples
    --------
    >>> check_video_file('/no/such/clip.mp4')
    Traceback (most recent call last):
    ...
    FileNotFoundError: Video file '/no/such/clip.mp4' does not exist.
    """
    path = os.fspath(path)
    av = _pyav(path)
    try:
        with av.open(path) as container:
            container.streams.video[0]
    except (av.FFmpegError, IndexError) as error:
        raise _bad_video("a video file PyAV can open", f"{path!r} ({error})") from error


@public
def load_video(video: Any) -> np.ndarray:
    """Any supported video as one array of frames.

    Parameters
    ----------
    video : numpy.ndarray, list or path-like
        A ``(time, height, width[, channel])`` array (uint8, or floats in
        [0, 1]; 1 channel is grey), a list of frames (each anything
        :func:`~pytorch_feature_analysis.load_image` reads, or arrays), or a
        video file PyAV can decode.

    Returns
    -------
    numpy.ndarray
        ``(time, height, width, 3)``: uint8 for files, images and uint8
        arrays; the floats as given otherwise.

    Examples
    --------
    >>> load_video(np.zeros((5, 8, 6), dtype=np.uint8)).shape
    (5, 8, 6, 3)
    >>> load_video([np.ones((8, 6, 3))] * 2).dtype
    dtype('float64')
    """
    if isinstance(video, np.ndarray):
        return _video_array(video)
    if isinstance(video, (str, os.PathLike)):
        return _read_video_file(os.fspath(video))
    if isinstance(video, (list, tuple)) and video:
        frames = video
        if not all(isinstance(frame, np.ndarray) for frame in video):
            frames = [np.asarray(load_image(frame)) for frame in video]  # RGB uint8
        shapes = {frame.shape for frame in frames}
        if len(shapes) > 1:
            raise _bad_video("frames of one shape", f"shapes {sorted(shapes)}")
        return _video_array(np.stack(frames))
    raise _bad_video("a (time, height, width, channel) array, a non-empty list of frames or a "
                     "video file", describe(video))


def _size_pair(value: Any, param: str) -> list[int]:
    values = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not 1 <= len(values) <= 2:
        raise fail(param, "an int or a pair of ints (height, width)", value)
    return [check_int(v, param, minimum=1) for v in values]


@dataclass(frozen=True)
class VideoTransform:
    """A video model's preprocessing, as torchvision's ``VideoClassification`` preset.

    Made by :func:`video_transform`. Called on one video (anything
    :func:`load_video` reads), it keeps the first ``num_frames`` frames,
    resizes every frame to ``resize_size`` (bilinear, no antialiasing, as the
    preset), crops the centre ``crop_size``, scales uint8 values to [0, 1],
    normalises with ``mean`` and ``std`` and returns a float32 tensor
    ``(3, num_frames, height, width)`` -- the layout of torchvision's video
    models.
    """

    num_frames: int
    crop_size: tuple
    resize_size: tuple
    mean: tuple
    std: tuple

    def __call__(self, video: Any) -> torch.Tensor:
        frames = load_video(video)
        if len(frames) < self.num_frames:
            raise _bad_video(f"a clip of at least num_frames={self.num_frames} frames (every "
                             "clip is cut to that length; give video_transform a smaller "
                             "num_frames for shorter clips)", f"a clip of {len(frames)} frames")
        clip = torch.from_numpy(np.ascontiguousarray(frames[: self.num_frames]))
        clip = clip.permute(0, 3, 1, 2)
        clip = F.resize(clip, list(self.resize_size), interpolation=InterpolationMode.BILINEAR,
                        antialias=False)
        clip = F.center_crop(clip, list(self.crop_size))
        clip = F.convert_image_dtype(clip, torch.float32)
        clip = F.normalize(clip, list(self.mean), list(self.std))
        return clip.permute(1, 0, 2, 3).contiguous()

    def preprocess_batch(self, videos: Sequence[Any]) -> torch.Tensor:
        """Every video transformed, stacked: ``(len(videos), 3, num_frames, height, width)``."""
        return torch.stack([self(video) for video in videos])


@public
def video_transform(
    model: str = "r3d_18",
    *,
    num_frames: int = 16,
    crop_size: Any = None,
    resize_size: Any = None,
) -> VideoTransform:
    """The preprocessing of one of torchvision's video classifiers.

    Parameters
    ----------
    model : str, default 'r3d_18'
        A torchvision video model (``'r3d_18'``, ``'mc3_18'``,
        ``'r2plus1d_18'``, ``'s3d'``, ``'mvit_v1_b'``, ``'mvit_v2_s'``,
        ``'swin3d_t'``, ...); its default weights' preset gives the sizes,
        mean and standard deviation.
    num_frames : int, default 16
        Frames kept from the start of each clip (the Kinetics models were
        trained on 16-frame clips); every clip of a call then has this
        length, and a shorter clip is an error.
    crop_size, resize_size : int or (int, int), optional
        Override the preset's sizes (e.g. tiny inputs for quick tests); an
        int ``crop_size`` is a square, an int ``resize_size`` the shorter
        side.

    Returns
    -------
    VideoTransform
        Pass it as ``transform`` to :func:`~pytorch_feature_analysis.get_rdms`,
        :func:`~pytorch_feature_analysis.get_activations` and the other
        analyses.

    Examples
    --------
    >>> transform = video_transform('r3d_18', num_frames=4)
    >>> transform.crop_size, transform.resize_size
    ((112, 112), (128, 171))
    >>> transform(moving_grating(6, 40, 60)).shape
    torch.Size([3, 4, 112, 112])
    """
    import torchvision

    try:
        preset = torchvision.models.get_model_weights(model).DEFAULT.transforms()
    except (ValueError, KeyError, AttributeError, TypeError):
        preset = None
    if not isinstance(preset, VideoClassification):
        video_names = torchvision.models.list_models(module=torchvision.models.video)
        raise fail("model", f"one of torchvision's video models {video_names}", model)
    return VideoTransform(
        num_frames=check_int(num_frames, "num_frames", minimum=1),
        crop_size=tuple(_size_pair(preset.crop_size if crop_size is None else crop_size,
                                   "crop_size") * 2)[:2],
        resize_size=tuple(_size_pair(preset.resize_size if resize_size is None else resize_size,
                                     "resize_size")),
        mean=tuple(preset.mean),
        std=tuple(preset.std),
    )
