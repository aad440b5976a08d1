"""MNIST loading for the trainer: find, download, verify and parse the IDX files.

The trainer reads MNIST from the four canonical gzip'd IDX files (LeCun, Cortes, Burges):

- ``train-images-idx3-ubyte.gz`` and ``train-labels-idx1-ubyte.gz`` (60,000 examples);
- ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (10,000 examples).

Where the files live is decided by :func:`resolve_data_dir`: an explicit folder, else the
``DPPLAN_DATA_DIR`` environment variable, else a per-user cache folder.

Invariants:

- Every file is checked against the md5 of its **uncompressed** content (``MNIST_MD5``)
  on every load and after every download. The uncompressed content is what matters: the
  same bytes can be gzip'd in many ways, and mirrors do not agree on the ``.gz`` bytes.
  Checking the four files costs about 0.3 s on one core, because the bytes are
  decompressed anyway to be parsed.
- A download never leaves anything half-written behind. It goes to a temporary file in
  the target folder, is verified, and only then is moved into place with
  :func:`os.replace`, which is atomic on POSIX and Windows. On any failure the temporary
  file is deleted.
- Only :mod:`urllib.request` is used for the network, so there is no extra dependency.
  Mirrors are tried in order; ``DPPLAN_MNIST_MIRRORS`` (comma-separated base URLs)
  replaces :data:`DEFAULT_MIRRORS`.
- Images are returned as float32 tensors of shape Nx1x28x28, normalised with the usual
  MNIST mean 0.1307 and standard deviation 0.3081; labels are int64 tensors in 0..9.

Every problem with the files (missing, unreadable, wrong checksum, bad IDX header,
truncated, every mirror failing) raises :class:`~dpplan.errors.DataError`. Invalid
arguments raise :class:`~dpplan.errors.PlanError` naming the argument.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import logging
import math
import os
import struct
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import torch

from dpplan.errors import DataError, PlanError
from dpplan.train.specs import DATA_DIR_ENV

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_MIRRORS",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "MIRRORS_ENV",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MEAN",
    "MNIST_STD",
    "MnistData",
    "download_mnist",
    "load_mnist",
    "parse_idx",
    "resolve_data_dir",
    "split_validation",
]

_LOG = logging.getLogger(__name__)

MIRRORS_ENV = "DPPLAN_MNIST_MIRRORS"
"""Environment variable with comma-separated mirror base URLs; replaces the defaults."""

DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
"""Base URLs tried in order; a file's URL is the base URL followed by its file name."""

_TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
_TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
_TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

MNIST_FILES: tuple[str, ...] = (_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS)
"""The four canonical MNIST file names, in the order train images, train labels, test
images, test labels."""

# md5 of the *uncompressed* (gunzipped) content of each file. The train-images value is
# the one given in /work/shared/data/mnist/README.md. The other three were computed by
# gunzipping the files in /work/shared/data/mnist, whose .gz bytes are identical to the
# published ones (.gz md5 d53e105e..., 9fb629c4..., ec29112d...).
MNIST_MD5: Mapping[str, str] = MappingProxyType(
    {
        _TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
        _TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
        _TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
        _TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
    }
)
"""md5 hex digest of the uncompressed content of each MNIST file."""

# Uncompressed sizes in bytes: the IDX header plus one byte per pixel or label. Reading at
# most one byte more than this bounds the work a bad or hostile file can cause.
_MNIST_SIZES: Mapping[str, int] = MappingProxyType(
    {
        _TRAIN_IMAGES: 16 + 60_000 * 28 * 28,
        _TRAIN_LABELS: 8 + 60_000,
        _TEST_IMAGES: 16 + 10_000 * 28 * 28,
        _TEST_LABELS: 8 + 10_000,
    }
)

IDX_IMAGES_MAGIC = 2051
"""IDX magic number of a 3-dimensional unsigned-byte array (0x00000803): MNIST images."""

IDX_LABELS_MAGIC = 2049
"""IDX magic number of a 1-dimensional unsigned-byte array (0x00000801): MNIST labels."""

MNIST_MEAN = 0.1307
"""Mean pixel value of the MNIST training images, after scaling to [0, 1]."""

MNIST_STD = 0.3081
"""Standard deviation of the MNIST training pixels, after scaling to [0, 1]."""

_IMAGE_SIDE = 28
_NUM_CLASSES = 10
_ALLOWED_SCHEMES = ("http", "https", "file")
_CHUNK_BYTES = 1 << 20
# The largest file is ~9.9 MB gzip'd; no honest mirror sends more than this.
_MAX_DOWNLOAD_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, eq=False, repr=False)
class MnistData:
    """MNIST as tensors on one device.

    Attributes:
        train_images: float32, shape (60000, 1, 28, 28), normalised with ``MNIST_MEAN``
            and ``MNIST_STD``.
        train_labels: int64, shape (60000,), values in 0..9.
        test_images: float32, shape (10000, 1, 28, 28), normalised like the training
            images.
        test_labels: int64, shape (10000,), values in 0..9.
        source: the folder the four files were read from.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: Path

    def __repr__(self) -> str:
        """Summarise shapes and device instead of printing 70,000 images."""
        return (
            f"MnistData(train={tuple(self.train_images.shape)}, "
            f"test={tuple(self.test_images.shape)}, device={self.train_images.device}, "
            f"source={str(self.source)!r})"
        )


class _ContentError(Exception):
    """A file's content is not the expected MNIST file (private; becomes DataError)."""


class _MirrorError(Exception):
    """One mirror failed to deliver one verified file (private; collected into DataError)."""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that holds, or will hold, the MNIST files.

    The folder is not created and need not exist.

    Args:
        data_dir: an explicit folder. ``~`` is expanded. When ``None``, the environment
            variable ``DPPLAN_DATA_DIR`` is used if set and non-empty; otherwise the
            per-user cache folder ``$XDG_CACHE_HOME/dpplan/mnist`` (when
            ``XDG_CACHE_HOME`` is an absolute path) or ``~/.cache/dpplan/mnist``.

    Returns:
        The folder as a :class:`pathlib.Path`.

    Raises:
        PlanError: ``data_dir`` is neither ``None``, a string nor a path-like object, or
            is the empty string.

    Example:
        >>> resolve_data_dir("/tmp/mnist").as_posix()
        '/tmp/mnist'
    """
    if data_dir is None:
        from_env = os.environ.get(DATA_DIR_ENV, "")
        if from_env:
            return Path(from_env).expanduser()
        cache_home = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(cache_home) if os.path.isabs(cache_home) else Path.home() / ".cache"
        return base / "dpplan" / "mnist"
    if not isinstance(data_dir, (str, os.PathLike)) or isinstance(data_dir, bytes):
        raise PlanError("data_dir", data_dir, "a folder path (str or os.PathLike) or None")
    text = os.fspath(data_dir)
    if not text:
        raise PlanError(
            "data_dir",
            data_dir,
            "a non-empty folder path or None",
            hint=f"Pass None to use {DATA_DIR_ENV} or the per-user cache folder.",
        )
    return Path(text).expanduser()


def download_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download every MNIST file that is missing or corrupt in the data folder.

    Files that are present and pass their checksum are left alone. For each other file the
    mirrors are tried in order. Each attempt writes to a temporary file in the data folder,
    checks the md5 of its uncompressed content, and moves it into place with
    :func:`os.replace` only if the checksum matches; otherwise the temporary file is
    deleted and the next mirror is tried. No partial or temporary file is left behind.

    Args:
        data_dir: the target folder, resolved with :func:`resolve_data_dir`; created if it
            does not exist.
        mirrors: base URLs (``http``, ``https`` or ``file``) tried in order, e.g.
            ``("https://example.org/mnist/",)``; the file name is appended to each. When
            ``None``, the comma-separated list in ``DPPLAN_MNIST_MIRRORS`` is used if set,
            else :data:`DEFAULT_MIRRORS`.
        timeout: seconds to wait on each connection or read, finite and > 0.

    Returns:
        The data folder, which then holds the four verified files.

    Raises:
        PlanError: ``mirrors`` is a single string, empty, or holds a URL whose scheme is
            not ``http``, ``https`` or ``file`` (field ``DPPLAN_MNIST_MIRRORS`` when the
            bad list came from the environment); ``timeout`` is not a finite number > 0;
            ``data_dir`` is invalid.
        DataError: the folder cannot be created or written, or every mirror failed for a
            file. The message lists the file, each mirror URL tried and why it failed,
            and how to place the files by hand.

    Example:
        >>> download_mnist("~/data/mnist", timeout=60.0)  # doctest: +SKIP
        PosixPath('/home/me/data/mnist')
    """
    directory = resolve_data_dir(data_dir)
    mirror_list = _resolve_mirrors(mirrors)
    _check_timeout(timeout)
    for name in MNIST_FILES:
        try:
            _check_content(directory / name, name=name)
        except (_ContentError, OSError):  # missing, unreadable or corrupt: fetch it
            pass
        else:
            continue
        _ensure_directory(directory)
        _download_file(directory, name=name, mirrors=mirror_list, timeout=timeout)
    return directory


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    device: str | torch.device = "cpu",
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    create_folder: bool = True,
) -> MnistData:
    """Load MNIST from the four IDX files as normalised tensors on ``device``.

    Each file's uncompressed content is checked against :data:`MNIST_MD5` and parsed as
    IDX (magic number, big-endian dimensions, exact length). Missing or corrupt files are
    downloaded first when ``download`` is true (see :func:`download_mnist`).

    Args:
        data_dir: folder with the files, resolved with :func:`resolve_data_dir`.
        download: whether to fetch missing or corrupt files from the mirrors. With
            ``False`` nothing touches the network and a missing file is an error.
        device: torch device for the tensors, e.g. ``"cpu"`` or ``"cuda"``.
        mirrors: base URLs for downloads; ``None`` means ``DPPLAN_MNIST_MIRRORS`` or
            :data:`DEFAULT_MIRRORS`. Only used when a file must be downloaded.
        timeout: seconds to wait on each connection or read while downloading, > 0.
        create_folder: whether a data folder that does not exist may be created to
            download into. With ``False`` (what the trainer passes for a folder the user
            named: a mistyped name must not become a new folder) a missing folder is a
            :class:`DataError` that names it, the four files it needs and how to get them,
            and nothing is created or downloaded.

    Returns:
        An :class:`MnistData` with float32 images of shape Nx1x28x28 normalised with
        mean 0.1307 and standard deviation 0.3081, int64 labels in 0..9, and the folder
        it came from.

    Raises:
        DataError: a file is missing and ``download`` is false (the message names the
            missing files and the folder); a file fails its checksum or cannot be read
            and ``download`` is false; a file has a bad IDX magic number, is truncated,
            or its label count differs from its image count; a download failed on every
            mirror (the message first says which files the folder lacks, then why each
            download failed); the folder does not exist and ``create_folder`` is false.
        PlanError: ``device`` is not a torch device, or is a CUDA device on a machine
            without CUDA; ``timeout`` or ``data_dir`` is invalid; ``download`` is true
            and ``mirrors`` (or ``DPPLAN_MNIST_MIRRORS``) is invalid; ``create_folder``
            is not a bool.

    Example:
        >>> data = load_mnist(download=False)  # doctest: +SKIP
        >>> data.train_images.shape, data.test_labels.dtype  # doctest: +SKIP
        (torch.Size([60000, 1, 28, 28]), torch.int64)
    """
    directory = resolve_data_dir(data_dir)
    target = _resolve_device(device)
    # Mirrors only matter for downloads: a bad DPPLAN_MNIST_MIRRORS must not break offline use.
    mirror_list = _resolve_mirrors(mirrors) if download else ()
    _check_timeout(timeout)
    if not isinstance(create_folder, bool):
        raise PlanError("create_folder", create_folder, "True or False")
    if directory.exists() and not directory.is_dir():
        raise DataError(f"MNIST data folder {str(directory)!r} exists but is not a folder.")
    if not create_folder and not directory.exists():
        raise DataError(_no_folder_message(directory))

    payloads: dict[str, bytearray] = {}
    missing: list[str] = []
    broken: dict[str, str] = {}
    for name in MNIST_FILES:
        try:
            payloads[name] = _check_content(directory / name, name=name)
        except FileNotFoundError:
            missing.append(name)
        except _ContentError as exc:
            broken[name] = str(exc)
        except OSError as exc:
            broken[name] = f"cannot be read ({exc})"

    if missing or broken:
        if not download:
            raise DataError(_not_loadable_message(directory, missing=missing, broken=broken))
        _ensure_directory(directory)
        for name in [*missing, *broken]:
            try:
                _download_file(directory, name=name, mirrors=mirror_list, timeout=timeout)
            except DataError as exc:  # say first what the folder lacks, then the download
                lacking = _lacking_summary(directory, missing=missing, broken=broken)
                raise DataError(f"{lacking} Downloading them failed: {exc}") from exc
            try:
                payloads[name] = _check_content(directory / name, name=name)
            except (_ContentError, OSError) as exc:  # replaced by another process meanwhile
                raise DataError(f"{directory / name} changed right after download: {exc}") from exc

    train_images, train_labels = _decode_pair(
        payloads[_TRAIN_IMAGES],
        payloads[_TRAIN_LABELS],
        images_name=_TRAIN_IMAGES,
        labels_name=_TRAIN_LABELS,
    )
    test_images, test_labels = _decode_pair(
        payloads[_TEST_IMAGES],
        payloads[_TEST_LABELS],
        images_name=_TEST_IMAGES,
        labels_name=_TEST_LABELS,
    )
    return MnistData(
        train_images=_normalize(train_images, device=target),
        train_labels=train_labels.to(device=target, dtype=torch.int64),
        test_images=_normalize(test_images, device=target),
        test_labels=test_labels.to(device=target, dtype=torch.int64),
        source=directory,
    )


def parse_idx(
    data: bytes | bytearray,
    *,
    expected_magic: int,
    source: str = "IDX data",
) -> torch.Tensor:
    """Parse an uncompressed IDX unsigned-byte array.

    The IDX format is a big-endian 32-bit magic number ``0x000008DD`` (``08`` = unsigned
    byte, ``DD`` = number of dimensions), then one big-endian 32-bit size per dimension,
    then the values in row-major order.

    Args:
        data: the uncompressed file content.
        expected_magic: :data:`IDX_IMAGES_MAGIC` (2051, three dimensions) or
            :data:`IDX_LABELS_MAGIC` (2049, one dimension).
        source: how to name the data in error messages, e.g. its file path.

    Returns:
        A uint8 tensor whose shape is the dimensions from the header. It shares memory
        with ``data`` when ``data`` is a ``bytearray``.

    Raises:
        PlanError: ``expected_magic`` is not 2049 or 2051.
        DataError: the magic number differs from ``expected_magic``; the data is shorter
            than its header says (truncated) or longer (trailing bytes).

    Example:
        >>> import struct
        >>> parse_idx(struct.pack(">II", IDX_LABELS_MAGIC, 3) + bytes([7, 2, 1]),
        ...           expected_magic=IDX_LABELS_MAGIC).tolist()
        [7, 2, 1]
    """
    if expected_magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC) or isinstance(
        expected_magic, bool
    ):
        raise PlanError(
            "expected_magic",
            expected_magic,
            f"{IDX_IMAGES_MAGIC} (images) or {IDX_LABELS_MAGIC} (labels)",
        )
    size = len(data)
    if size < 4:
        raise DataError(
            f"{source} is truncated: {size} bytes, too short for the 4-byte IDX magic number."
        )
    (magic,) = struct.unpack_from(">I", data, 0)
    if magic != expected_magic:
        kind = "images" if expected_magic == IDX_IMAGES_MAGIC else "labels"
        raise DataError(
            f"{source} is not an IDX {kind} file: magic number {magic} (0x{magic:08x}), "
            f"expected {expected_magic} (0x{expected_magic:08x})."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if size < header:
        raise DataError(
            f"{source} is truncated: {size} bytes, shorter than its {header}-byte IDX header."
        )
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    count = math.prod(dims)
    expected_size = header + count
    if size < expected_size:
        raise DataError(
            f"{source} is truncated: {size} bytes, but its header {list(dims)} requires "
            f"{expected_size}."
        )
    if size > expected_size:
        raise DataError(
            f"{source} has {size - expected_size} unexpected trailing bytes after the "
            f"{expected_size} bytes its header {list(dims)} describes."
        )
    if count == 0:
        return torch.empty(dims, dtype=torch.uint8)
    buffer = data if isinstance(data, bytearray) else bytearray(data)
    flat = torch.frombuffer(buffer, dtype=torch.uint8, count=count, offset=header)
    return flat.reshape(dims)


def split_validation(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    validation_size: int,
    seed: int,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Split a training set into a training part and a held-out validation part.

    The split is a seeded random permutation (``torch.randperm`` with a
    ``torch.Generator`` seeded with ``seed``), so the same seed and size always give the
    same split, on any device. The two parts are disjoint and together cover every
    example once; within each part the examples keep their original order.

    Args:
        images: the training examples, first dimension N ≥ 1.
        labels: the matching labels, first dimension N.
        validation_size: number of examples to hold out, an int in [0, N - 1].
        seed: seed of the permutation, an int in [0, 2**63 - 1].

    Returns:
        ``((train_images, train_labels), (validation_images, validation_labels))``, with
        ``N - validation_size`` and ``validation_size`` examples, on the input's device.

    Raises:
        PlanError: ``validation_size`` is not an int in [0, N - 1] (field
            ``validation_size``); ``seed`` is not an int in [0, 2**63 - 1] (field
            ``seed``); ``labels`` and ``images`` differ in length (field ``labels``).

    Example:
        >>> images, labels = torch.arange(10.0), torch.arange(10)
        >>> (train_x, train_y), (val_x, val_y) = split_validation(
        ...     images, labels, validation_size=3, seed=0)
        >>> len(train_x), len(val_x)
        (7, 3)
    """
    total = int(images.shape[0]) if images.dim() > 0 else 0
    label_count = int(labels.shape[0]) if labels.dim() > 0 else 0
    if label_count != total:
        raise PlanError(
            "labels",
            f"<{label_count} labels>",
            f"as many labels as images ({total})",
        )
    if (
        isinstance(validation_size, bool)
        or not isinstance(validation_size, int)
        or not (0 <= validation_size <= total - 1)
    ):
        raise PlanError(
            "validation_size",
            validation_size,
            f"an int in [0, {total - 1}] (the training set has {total} examples)",
            hint="Hold out fewer examples; at least one must stay for training.",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not (0 <= seed < 2**63):
        raise PlanError("seed", seed, "an int in [0, 2**63 - 1]")
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    permutation = torch.randperm(total, generator=generator)
    validation_index = permutation[:validation_size].sort().values.to(images.device)
    train_index = permutation[validation_size:].sort().values.to(images.device)
    label_validation_index = validation_index.to(labels.device)
    label_train_index = train_index.to(labels.device)
    return (
        (images[train_index], labels[label_train_index]),
        (images[validation_index], labels[label_validation_index]),
    )


# --------------------------------------------------------------------------------------
# Private helpers.
# --------------------------------------------------------------------------------------


def _check_content(path: Path, *, name: str) -> bytearray:
    """Return the uncompressed content of ``path`` if it matches ``MNIST_MD5[name]``.

    At most one byte past the expected size is decompressed, which bounds the work a bad
    or hostile file can cause.

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file cannot be opened.
        _ContentError: the path is a folder, the file is not valid gzip, or its content
            has the wrong size or md5.
    """
    expected_size = _MNIST_SIZES[name]
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below; FileNotFoundError must escape
    except IsADirectoryError as exc:
        raise _ContentError("is a folder, not a file") from exc
    with raw:
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                content = bytearray(stream.read(expected_size + 1))
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise _ContentError(f"is not a valid gzip file ({exc or type(exc).__name__})") from exc
    if len(content) != expected_size:
        more = "or more " if len(content) > expected_size else ""
        raise _ContentError(
            f"failed its checksum: uncompressed size is {more}{len(content)} bytes, "
            f"expected {expected_size}"
        )
    digest = hashlib.md5(content, usedforsecurity=False).hexdigest()
    if digest != MNIST_MD5[name]:
        raise _ContentError(
            f"failed its checksum: md5 of the uncompressed content is {digest}, "
            f"expected {MNIST_MD5[name]}"
        )
    return content


def _not_loadable_message(directory: Path, *, missing: list[str], broken: dict[str, str]) -> str:
    """Build the DataError message for ``load_mnist(download=False)``."""
    parts = []
    if missing:
        parts.append(f"MNIST files missing from {str(directory)!r}: {', '.join(missing)}.")
    for name, reason in broken.items():
        parts.append(f"{directory / name} {reason}.")
    parts.append(
        "Call load_mnist(download=True) or download_mnist() to fetch them, place the files "
        f"({', '.join(MNIST_FILES)}) in that folder yourself, or set {DATA_DIR_ENV} to a "
        "folder that holds them."
    )
    return " ".join(parts)


def _lacking_summary(directory: Path, *, missing: list[str], broken: dict[str, str]) -> str:
    """Say that ``directory`` does not hold MNIST, and which files are missing or broken."""
    parts = [f"MNIST data folder {str(directory)!r} does not hold MNIST:"]
    if missing:
        parts.append(f"missing {', '.join(missing)}" + (";" if broken else "."))
    if broken:
        parts.append("; ".join(f"{name} {reason}" for name, reason in broken.items()) + ".")
    return " ".join(parts)


def _no_folder_message(directory: Path) -> str:
    """Build the DataError message for a named data folder that does not exist."""
    return (
        f"MNIST data folder {str(directory)!r} does not exist (is the name mistyped?); "
        "nothing was created or downloaded. It must hold the four MNIST files "
        f"{', '.join(MNIST_FILES)}. Point --data-dir (or {DATA_DIR_ENV}) at a folder that "
        "holds them; or create the folder to have the files downloaded into it; or leave "
        f"--data-dir and {DATA_DIR_ENV} unset to use the per-user cache folder, where they "
        "are downloaded when missing."
    )


def _resolve_mirrors(mirrors: Sequence[str] | None) -> tuple[str, ...]:
    """Return the mirror list: the argument, else ``DPPLAN_MNIST_MIRRORS``, else defaults."""
    if mirrors is None:
        from_env = tuple(
            part.strip() for part in os.environ.get(MIRRORS_ENV, "").split(",") if part.strip()
        )
        if not from_env:
            return DEFAULT_MIRRORS
        return _validate_mirrors(from_env, field=MIRRORS_ENV)
    if isinstance(mirrors, (str, bytes)):
        raise PlanError(
            "mirrors",
            mirrors,
            "a sequence of base URLs, not a single string",
            hint="Wrap one URL in a tuple: mirrors=(url,).",
        )
    return _validate_mirrors(tuple(mirrors), field="mirrors")


def _validate_mirrors(mirrors: tuple[object, ...], *, field: str) -> tuple[str, ...]:
    """Check that ``mirrors`` is a non-empty tuple of http, https or file URLs."""
    if not mirrors:
        raise PlanError(field, mirrors, "at least one base URL")
    for url in mirrors:
        scheme = urllib.parse.urlsplit(url).scheme.lower() if isinstance(url, str) else ""
        if scheme not in _ALLOWED_SCHEMES:
            raise PlanError(
                field,
                mirrors,
                "base URLs starting with http://, https:// or file://",
                hint=f"{url!r} is not one.",
            )
    return tuple(str(url) for url in mirrors)


def _check_timeout(timeout: float) -> None:
    """Reject a timeout that is not a finite number of seconds > 0 (NaN included)."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not (timeout > 0)
    ):
        raise PlanError("timeout", timeout, "a finite number of seconds > 0")


def _resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``device`` into a torch.device, refusing CUDA where there is none."""
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PlanError(
            "device", device, "a torch device such as 'cpu' or 'cuda'", hint=str(exc)
        ) from exc
    if target.type == "cuda" and not torch.cuda.is_available():
        raise PlanError(
            "device",
            device,
            "'cpu' on this machine, which has no usable CUDA device",
        )
    return target


def _ensure_directory(directory: Path) -> None:
    """Create the data folder, turning failures into DataError."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the MNIST data folder {str(directory)!r}: {exc}. "
            f"Set {DATA_DIR_ENV} or pass data_dir to use another folder."
        ) from exc


def _mirror_url(base: str, name: str) -> str:
    """Append a file name to a mirror base URL."""
    return (base if base.endswith("/") else base + "/") + name


def _download_file(directory: Path, *, name: str, mirrors: tuple[str, ...], timeout: float) -> None:
    """Fetch ``name`` into ``directory`` from the first mirror that serves a good copy."""
    failures: list[str] = []
    for base in mirrors:
        url = _mirror_url(base, name)
        _LOG.info("downloading %s from %s", name, url)
        try:
            _fetch_verified(url, directory=directory, name=name, timeout=timeout)
        except _MirrorError as exc:
            _LOG.info("mirror failed for %s: %s: %s", name, url, exc)
            failures.append(f"  - {url}: {exc}")
            continue
        return
    raise DataError(
        f"could not download {name} into {str(directory)!r}: all {len(mirrors)} mirror(s) "
        "failed:\n" + "\n".join(failures) + "\n"
        f"If this machine is offline, place the MNIST files ({', '.join(MNIST_FILES)}) in "
        f"{str(directory)!r} yourself, or set {DATA_DIR_ENV} to a folder that already holds "
        f"them. To use other mirrors, set {MIRRORS_ENV} to comma-separated base URLs."
    )


def _fetch_verified(url: str, *, directory: Path, name: str, timeout: float) -> None:
    """Download ``url`` to a temporary file, verify it and move it to ``directory/name``.

    Raises:
        _MirrorError: the download failed or the content failed its checksum; the
            temporary file has been removed.
        DataError: the temporary file could not be created or moved into place.
    """
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise DataError(
            f"cannot write into the MNIST data folder {str(directory)!r}: {exc}"
        ) from exc
    temp_path = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as sink:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    _copy_bounded(response, sink)
            except urllib.error.HTTPError as exc:
                raise _MirrorError(f"HTTP error {exc.code} {exc.reason}") from exc
            except urllib.error.URLError as exc:
                raise _MirrorError(f"unreachable (offline?): {exc.reason}") from exc
            except (http.client.HTTPException, OSError, ValueError) as exc:
                raise _MirrorError(f"download failed: {exc or type(exc).__name__}") from exc
        try:
            _check_content(temp_path, name=name)
        except _ContentError as exc:
            raise _MirrorError(f"downloaded file {exc}") from exc
        except OSError as exc:
            raise _MirrorError(f"cannot read the downloaded file back: {exc}") from exc
        try:
            os.replace(temp_path, directory / name)
        except OSError as exc:
            raise DataError(f"cannot move the downloaded {name} into place: {exc}") from exc
    finally:
        temp_path.unlink(missing_ok=True)


def _copy_bounded(source: BinaryIO, sink: BinaryIO) -> None:
    """Copy ``source`` to ``sink`` in chunks, refusing more than _MAX_DOWNLOAD_BYTES."""
    copied = 0
    while chunk := source.read(_CHUNK_BYTES):
        copied += len(chunk)
        if copied > _MAX_DOWNLOAD_BYTES:
            raise _MirrorError(f"response is larger than {_MAX_DOWNLOAD_BYTES} bytes")
        sink.write(chunk)


def _decode_pair(
    image_bytes: bytes | bytearray,
    label_bytes: bytes | bytearray,
    *,
    images_name: str,
    labels_name: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse one images file and its labels file and check that they belong together.

    Raises:
        DataError: bad magic, truncated data, images not 28x28, labels outside 0..9, or a
            label count that differs from the image count.
    """
    images = parse_idx(image_bytes, expected_magic=IDX_IMAGES_MAGIC, source=images_name)
    labels = parse_idx(label_bytes, expected_magic=IDX_LABELS_MAGIC, source=labels_name)
    if tuple(images.shape[1:]) != (_IMAGE_SIDE, _IMAGE_SIDE):
        raise DataError(
            f"{images_name} holds images of shape {tuple(images.shape[1:])}, "
            f"expected ({_IMAGE_SIDE}, {_IMAGE_SIDE})."
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_name} holds {images.shape[0]} images but {labels_name} holds "
            f"{labels.shape[0]} labels; the files do not belong together."
        )
    if labels.numel() and int(labels.max()) >= _NUM_CLASSES:
        raise DataError(f"{labels_name} holds label {int(labels.max())}, expected 0..9.")
    return images, labels


def _normalize(images: torch.Tensor, *, device: torch.device) -> torch.Tensor:
    """Turn uint8 Nx28x28 images into float32 Nx1x28x28 with MNIST mean and std."""
    scaled = images.to(device).unsqueeze(1).to(torch.float32)
    return scaled.div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)
