"""MNIST for the trainer: find, download, verify and parse the four gzip'd IDX files.

Invariants: each file must match the md5 of its **uncompressed** content (mirrors disagree
on the ``.gz`` bytes, not the content) on every load and after every download; at most
``_MAX_CONTENT_BYTES`` are decompressed and ``_MAX_DOWNLOAD_BYTES`` downloaded per file; a
download goes to a temporary file in the folder and is moved into place with
:func:`os.replace` only once verified, so nothing half-written is left behind; a folder is
never created under ``create_folder=False``. File problems raise
:class:`~dpplan.errors.DataError`, bad arguments :class:`~dpplan.errors.PlanError`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

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
    "load_mnist",
    "parse_idx",
    "resolve_data_dir",
    "split_validation",
]

MIRRORS_ENV = "DPPLAN_MNIST_MIRRORS"
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# md5 of each file's uncompressed content (the shared copies' .gz bytes are the published
# ones), in the order train images, train labels, test images, test labels.
MNIST_MD5 = MappingProxyType(
    {
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    }
)
MNIST_FILES = tuple(MNIST_MD5)
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049  # 0x803: 3-d ubyte array; 0x801: 1-d
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the training pixels scaled to [0, 1]
_MAX_CONTENT_BYTES = 16 + 60_000 * 28 * 28  # the largest uncompressed file
_MAX_DOWNLOAD_BYTES = 64 << 20  # the largest .gz is ~9.9 MB
_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True, eq=False, repr=False)
class MnistData:
    """MNIST as tensors on one device.

    Attributes:
        train_images: float32 (60000, 1, 28, 28), normalised with MNIST_MEAN and MNIST_STD.
        train_labels: int64 (60000,), values in 0..9.
        test_images: float32 (10000, 1, 28, 28), normalised like the training images.
        test_labels: int64 (10000,), values in 0..9.
        source: the folder the four files were read from.
        downloaded: the files this load downloaded into ``source`` (empty: every file was
            already there).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: Path
    downloaded: tuple[str, ...] = ()

    @property
    def provenance(self) -> str:
        """Where the data came from, in words: the folder, and what was downloaded into it.

        Example:
            >>> MnistData(train_images=None, train_labels=None, test_images=None,
            ...           test_labels=None, source=Path("/data/mnist")).provenance
            'read from /data/mnist (nothing downloaded)'
        """
        if not self.downloaded:
            return f"read from {self.source} (nothing downloaded)"
        return f"downloaded into {self.source} ({', '.join(self.downloaded)})"

    def __repr__(self) -> str:
        """Give sizes, device and folder instead of 70,000 images."""
        sizes = f"train={len(self.train_images)}, test={len(self.test_images)}"
        return f"MnistData({sizes}, device={self.train_images.device}, source={str(self.source)!r})"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that holds, or will hold, the MNIST files (it is not created).

    Args:
        data_dir: a folder (``~`` is expanded). ``None`` means ``$DPPLAN_DATA_DIR`` if set
            and non-empty, else ``$XDG_CACHE_HOME/dpplan/mnist`` if that is absolute, else
            ``~/.cache/dpplan/mnist``.

    Returns:
        The folder.

    Raises:
        PlanError: ``data_dir`` is not ``None``, a str or a path-like, or is empty.

    Example:
        >>> resolve_data_dir("/tmp/mnist").as_posix()
        '/tmp/mnist'
    """
    if data_dir is None:
        if from_env := os.environ.get(DATA_DIR_ENV, ""):
            return Path(from_env).expanduser()
        cache = os.environ.get("XDG_CACHE_HOME", "")
        return (Path(cache) if os.path.isabs(cache) else Path.home() / ".cache") / "dpplan/mnist"
    if not isinstance(data_dir, (str, os.PathLike)) or not os.fspath(data_dir):
        hint = f"Pass None to use {DATA_DIR_ENV} or the per-user cache folder."
        raise PlanError("data_dir", data_dir, "a non-empty folder path or None", hint=hint)
    return Path(os.fspath(data_dir)).expanduser()


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    device: str | torch.device = "cpu",
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    create_folder: bool = True,
) -> MnistData:
    """Load the four verified MNIST files, downloading those missing or corrupt.

    Args:
        data_dir: the folder, as for :func:`resolve_data_dir`.
        download: whether to fetch files that are missing or fail their checksum.
        device: torch device for the tensors, e.g. ``"cpu"`` or ``"cuda"``.
        mirrors: base URLs (``http``, ``https`` or ``file``) tried in order, the file name
            appended; ``None`` means ``$DPPLAN_MNIST_MIRRORS`` (comma-separated) or
            :data:`DEFAULT_MIRRORS`.
        timeout: seconds to wait on each connection or read, finite and > 0.
        create_folder: whether a missing folder may be created to download into.

    Returns:
        The data, images normalised; ``source`` is the folder.

    Raises:
        DataError: files are missing or corrupt and ``download`` is false; every mirror
            failed for a file (the message says first what the folder lacks); the folder
            cannot be written or is not a folder; the folder does not exist and
            ``create_folder`` is false (the message names it and the four files).
        PlanError: ``device`` is not a torch device or is CUDA without CUDA; ``timeout``,
            ``create_folder`` or ``data_dir`` is invalid; ``download`` is true and the
            mirrors are one string, none or not all http/https/file URLs.

    Example:
        >>> load_mnist(download=False).train_images.shape  # doctest: +SKIP
        torch.Size([60000, 1, 28, 28])
    """
    directory = resolve_data_dir(data_dir)
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PlanError("device", device, "a torch device such as 'cpu' or 'cuda'") from exc
    if target.type == "cuda" and not torch.cuda.is_available():
        raise PlanError("device", device, "'cpu' on this machine, which has no usable CUDA")
    # Mirrors only matter for downloads: a bad $DPPLAN_MNIST_MIRRORS must not break offline use.
    mirror_list = _resolve_mirrors(mirrors) if download else ()
    if not (_is_int(timeout) or isinstance(timeout, float)) or not 0 < timeout < math.inf:
        raise PlanError("timeout", timeout, "a finite number of seconds > 0")
    if not isinstance(create_folder, bool):
        raise PlanError("create_folder", create_folder, "True or False")
    if directory.exists() and not directory.is_dir():
        raise DataError(f"MNIST data folder {str(directory)!r} exists but is not a folder.")
    if not create_folder and not directory.exists():
        raise DataError(no_folder_message(directory))
    content, problems = _scan(directory)
    if problems and not download:
        raise DataError(
            f"{_lacking(directory, problems)} Call load_mnist(download=True) to fetch "
            f"them, place the MNIST files ({', '.join(MNIST_FILES)}) in that folder "
            f"yourself, or set {DATA_DIR_ENV} to a folder that holds them."
        )
    content |= _download(directory, problems, mirror_list, timeout) if problems else {}
    # The checksums pin the content, so shapes and label values need no further checks.
    magics = (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC) * 2
    x_train, y_train, x_test, y_test = (
        parse_idx(content[name], expected_magic=magic, source=name).to(target)
        for name, magic in zip(MNIST_FILES, magics, strict=True)
    )
    return MnistData(
        train_images=_normalize(x_train),
        train_labels=y_train.long(),
        test_images=_normalize(x_test),
        test_labels=y_test.long(),
        source=directory,
        downloaded=tuple(name for name in MNIST_FILES if name in problems),
    )


def parse_idx(
    data: bytes | bytearray, *, expected_magic: int, source: str = "IDX data"
) -> torch.Tensor:
    """Parse an uncompressed IDX unsigned-byte array after checking its header.

    Args:
        data: the uncompressed content.
        expected_magic: :data:`IDX_IMAGES_MAGIC` (2051) or :data:`IDX_LABELS_MAGIC` (2049).
        source: how error messages name the data, e.g. its file name.

    Returns:
        A uint8 tensor shaped as the header says (sharing memory with a ``bytearray``).

    Raises:
        PlanError: ``expected_magic`` is not 2049 or 2051.
        DataError: another magic number, or more or fewer bytes than the header says.

    Example:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3]), expected_magic=2049).tolist()
        [7, 3]
    """
    if isinstance(expected_magic, bool) or expected_magic not in (2049, 2051):
        raise PlanError("expected_magic", expected_magic, "2051 (images) or 2049 (labels)")
    kind, size = "images" if expected_magic == IDX_IMAGES_MAGIC else "labels", len(data)
    if size < 4:
        raise DataError(f"{source} is truncated: {size} bytes, too short for an IDX magic number.")
    if (magic := struct.unpack_from(">I", data)[0]) != expected_magic:
        raise DataError(
            f"{source} is not an IDX {kind} file: magic number {magic} (0x{magic:08x}), "
            f"expected {expected_magic} (0x{expected_magic:08x})."
        )
    if size < (header := 4 + 4 * (magic & 0xFF)):
        raise DataError(
            f"{source} is truncated: {size} bytes, shorter than its {header}-byte header."
        )
    dims = struct.unpack_from(f">{magic & 0xFF}I", data, 4)
    if size != (expected := header + math.prod(dims)):
        what = (
            "is truncated"
            if size < expected
            else f"has {size - expected} unexpected trailing bytes"
        )
        raise DataError(
            f"{source} {what}: {size} bytes, but its header {list(dims)} requires {expected}."
        )
    if size == header:
        return torch.empty(dims, dtype=torch.uint8)
    buffer = data if isinstance(data, bytearray) else bytearray(data)
    return torch.frombuffer(buffer, dtype=torch.uint8, offset=header).reshape(dims)


def split_validation(
    images: torch.Tensor, labels: torch.Tensor, *, validation_size: int, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Split a training set into disjoint training and validation parts, in order.

    The split depends only on ``seed`` and N (not on the device or the global RNG).

    Args:
        images: the training examples, first dimension N ≥ 1.
        labels: the matching labels, first dimension N.
        validation_size: examples to hold out, an int in [0, N - 1].
        seed: seed of the permutation, an int in [0, 2**63 - 1].

    Returns:
        ``((train_images, train_labels), (validation_images, validation_labels))``.

    Raises:
        PlanError: ``validation_size`` or ``seed`` is not an int in range; ``labels`` and
            ``images`` differ in length (field ``labels``).

    Example:
        >>> x = torch.arange(9)
        >>> (train, _), (held_out, _) = split_validation(x, x, validation_size=3, seed=0)
        >>> len(train), len(held_out)
        (6, 3)
    """
    total = int(images.shape[0]) if images.dim() else 0
    if (count := int(labels.shape[0]) if labels.dim() else 0) != total:
        raise PlanError("labels", f"<{count} labels>", f"as many labels as images ({total})")
    if not _is_int(validation_size) or not 0 <= validation_size < total:
        expected = f"an int in [0, {total - 1}] (the training set has {total} examples)"
        hint = "Hold out fewer examples; at least one must stay for training."
        raise PlanError("validation_size", validation_size, expected, hint=hint)
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise PlanError("seed", seed, "an int in [0, 2**63 - 1]")
    permutation = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    train, held_out = permutation[validation_size:], permutation[:validation_size]
    train, held_out = train.sort().values, held_out.sort().values
    return (
        (images[train.to(images.device)], labels[train.to(labels.device)]),
        (images[held_out.to(images.device)], labels[held_out.to(labels.device)]),
    )


class _Unusable(Exception):
    """Why a file or a download is not the MNIST file it should be (private)."""


def _is_int(value: object) -> bool:
    """Whether ``value`` is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _normalize(images: torch.Tensor) -> torch.Tensor:
    """Turn uint8 Nx28x28 images into float32 Nx1x28x28 with MNIST's mean and std."""
    return images.unsqueeze(1).to(torch.float32).div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)


def _resolve_mirrors(mirrors: Sequence[str] | None) -> tuple[str, ...]:
    """Return the checked mirrors: the argument, else ``$DPPLAN_MNIST_MIRRORS``, else defaults."""
    field = "mirrors"
    if mirrors is None:
        field, text = MIRRORS_ENV, os.environ.get(MIRRORS_ENV, "")
        mirrors = [url.strip() for url in text.split(",") if url.strip()] or DEFAULT_MIRRORS
    if isinstance(mirrors, (str, bytes)):
        hint = "Wrap one URL in a tuple: mirrors=(url,)."
        raise PlanError(field, mirrors, "a sequence of base URLs, not one string", hint=hint)
    if not (mirrors := tuple(mirrors)):
        raise PlanError(field, mirrors, "at least one base URL")
    for url in mirrors:
        if not (
            isinstance(url, str) and url.lower().startswith(("http://", "https://", "file://"))
        ):
            expected = "base URLs starting with http://, https:// or file://"
            raise PlanError(field, mirrors, expected, hint=f"{url!r} is not one.")
    return mirrors


def _read_verified(path: Path | str, name: str) -> bytearray:
    """Return the uncompressed content of ``path`` if its md5 is ``MNIST_MD5[name]``."""
    try:
        with gzip.open(path, "rb") as stream:
            content = bytearray(stream.read(_MAX_CONTENT_BYTES + 1))
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _Unusable(f"is not a valid gzip file ({exc or type(exc).__name__})") from exc
    except OSError as exc:
        raise _Unusable(f"cannot be read ({exc})") from exc
    if (digest := hashlib.md5(content, usedforsecurity=False).hexdigest()) != MNIST_MD5[name]:
        raise _Unusable(
            f"failed its checksum: md5 of the uncompressed content ({len(content)} bytes) "
            f"is {digest}, expected {MNIST_MD5[name]}"
        )
    return content


def _scan(directory: Path) -> tuple[dict[str, bytearray], dict[str, str | None]]:
    """Return the verified contents, and why each other file is unusable (None: missing)."""
    content, problems = {}, {}
    for name in MNIST_FILES:
        try:
            content[name] = _read_verified(directory / name, name)
        except _Unusable as exc:
            problems[name] = str(exc) if (directory / name).exists() else None
    return content, problems


def _lacking(directory: Path, problems: dict[str, str | None]) -> str:
    """Say that ``directory`` does not hold MNIST, and which files are missing or broken."""
    missing = [name for name, reason in problems.items() if reason is None]
    why = [f"missing {', '.join(missing)}"] if missing else []
    why += [f"{name} {reason}" for name, reason in problems.items() if reason is not None]
    return f"MNIST data folder {str(directory)!r} does not hold MNIST: {'; '.join(why)}."


def no_folder_message(directory: Path) -> str:
    """Say that a data folder the user named does not exist, and what to do."""
    return (
        f"MNIST data folder {str(directory)!r} does not exist (is the name mistyped?); "
        f"nothing was created or downloaded. It must hold {', '.join(MNIST_FILES)}. Point "
        f"--data-dir (or {DATA_DIR_ENV}) at a folder that holds them, create the folder to "
        "download them into it, or leave both unset to use the per-user cache folder."
    )


def _download(directory: Path, problems: dict, mirrors: tuple[str, ...], timeout: float) -> dict:
    """Fetch the unusable files into ``directory``; return their verified contents."""
    lacking = _lacking(directory, problems)  # said first, then why downloading failed
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return {name: _fetch(directory, name, mirrors, timeout) for name in problems}
    except DataError as exc:
        raise DataError(f"{lacking} Downloading them failed: {exc}") from exc
    except OSError as exc:  # from mkdir or mkstemp
        hint = f"Set {DATA_DIR_ENV} or pass data_dir to use another folder."
        raise DataError(f"{lacking} It cannot be written to download them ({exc}). {hint}") from exc


def _fetch(directory: Path, name: str, mirrors: tuple[str, ...], timeout: float) -> bytearray:
    """Fetch ``name`` from the first mirror serving a verified copy; move it into place."""
    failures = []
    for url in [base + ("" if base.endswith("/") else "/") + name for base in mirrors]:
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        try:
            with (
                os.fdopen(handle, "wb") as sink,
                urllib.request.urlopen(url, timeout=timeout) as got,
            ):
                while chunk := got.read(_CHUNK_BYTES):
                    if sink.tell() + len(chunk) > _MAX_DOWNLOAD_BYTES:
                        raise _Unusable(f"response is larger than {_MAX_DOWNLOAD_BYTES} bytes")
                    sink.write(chunk)
            content = _read_verified(temp, name)
            os.replace(temp, directory / name)
            return content
        except urllib.error.HTTPError as exc:
            failures.append(f"  - {url}: HTTP error {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            failures.append(f"  - {url}: unreachable (offline?): {exc.reason}")
        except (_Unusable, http.client.HTTPException, OSError, ValueError) as exc:
            failures.append(f"  - {url}: {exc or type(exc).__name__}")
        finally:
            Path(temp).unlink(missing_ok=True)
    raise DataError(
        f"could not download {name} into {str(directory)!r}: all {len(mirrors)} mirror(s) "
        "failed:\n" + "\n".join(failures) + f"\nIf this machine is offline, place the MNIST "
        f"files in that folder yourself or set {DATA_DIR_ENV} to a folder that holds them; "
        f"to use other mirrors, set {MIRRORS_ENV} to comma-separated base URLs."
    )
