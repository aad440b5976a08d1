"""Tests for dpplan.train.data: MNIST resolution, verification, parsing, download, split.

Real MNIST comes from the folder ``tests/mnist_data.py`` finds (``DPPLAN_TEST_MNIST``, then
``DPPLAN_DATA_DIR``, then ``../shared/data/mnist``).
Downloads are exercised against a local HTTP server on 127.0.0.1; no test touches the
internet, because an autouse fixture points ``DPPLAN_MNIST_MIRRORS`` at a closed local port.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mnist_data import find_mnist

from dpplan.errors import DataError, PlanError
from dpplan.train import data as data_module
from dpplan.train.data import (
    DATA_DIR_ENV,
    DEFAULT_MIRRORS,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MIRRORS_ENV,
    MNIST_FILES,
    MNIST_MD5,
    MnistData,
    load_mnist,
    parse_idx,
    resolve_data_dir,
    split_validation,
)

TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = MNIST_FILES


SHARED_MNIST = find_mnist()  # tests/mnist_data.py's folder, or None without MNIST
#: Through the ``mnist_dir`` fixture: skips without MNIST, fails with ``CI=true``.
needs_mnist = pytest.mark.usefixtures("mnist_dir")


def _closed_port() -> int:
    """Return a local TCP port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep tests off the internet, off the user's cache, and away from proxies."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(MIRRORS_ENV, f"http://127.0.0.1:{_closed_port()}/never/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # silence request logging
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Serve ``tmp_path/www`` over HTTP on 127.0.0.1; yield (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.timeout = 5
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _copy_files(target: Path, names: tuple[str, ...] | list[str]) -> Path:
    assert SHARED_MNIST is not None
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(SHARED_MNIST / name, target / name)
    return target


def _corrupt_gzip(name: str) -> bytes:
    """A valid gzip of the file's content with one byte changed (so the md5 differs)."""
    assert SHARED_MNIST is not None
    content = bytearray(gzip.decompress((SHARED_MNIST / name).read_bytes()))
    content[-1] = (content[-1] + 1) % 10
    return gzip.compress(bytes(content), mtime=0)


def _uncompressed_md5(path: Path) -> str:
    return hashlib.md5(gzip.decompress(path.read_bytes()), usedforsecurity=False).hexdigest()


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


# --------------------------------------------------------------------------------------
# Loading the real files.
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path) -> MnistData:
    return load_mnist(mnist_dir, download=False)


@needs_mnist
def test_load_real_mnist_shapes_and_dtypes(mnist: MnistData) -> None:
    assert mnist.train_images.shape == (60_000, 1, 28, 28)
    assert mnist.test_images.shape == (10_000, 1, 28, 28)
    assert mnist.train_labels.shape == (60_000,)
    assert mnist.test_labels.shape == (10_000,)
    assert mnist.train_images.dtype == torch.float32
    assert mnist.test_images.dtype == torch.float32
    assert mnist.train_labels.dtype == torch.int64
    assert mnist.test_labels.dtype == torch.int64
    assert mnist.train_images.device.type == "cpu"
    assert mnist.source == SHARED_MNIST
    assert "60000" in repr(mnist)


@needs_mnist
def test_load_real_mnist_labels_cover_all_digits(mnist: MnistData) -> None:
    for labels in (mnist.train_labels, mnist.test_labels):
        assert int(labels.min()) == 0
        assert int(labels.max()) == 9
        assert torch.unique(labels).tolist() == list(range(10))
    # Known first labels of the canonical files.
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]


@needs_mnist
def test_load_real_mnist_is_normalised(mnist: MnistData) -> None:
    assert abs(float(mnist.train_images.mean())) < 0.01
    assert abs(float(mnist.train_images.std()) - 1.0) < 0.01
    # Pixel 0 maps to -mean/std and pixel 255 to (1-mean)/std.
    assert float(mnist.train_images.min()) == pytest.approx(-0.1307 / 0.3081, abs=1e-6)
    assert float(mnist.train_images.max()) == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-5)


@needs_mnist
def test_mnist_data_is_frozen(mnist: MnistData) -> None:
    with pytest.raises(AttributeError):
        mnist.source = Path("/elsewhere")  # type: ignore[misc]


@needs_mnist
def test_checksums_are_of_uncompressed_content() -> None:
    assert SHARED_MNIST is not None
    for name in MNIST_FILES:
        assert _uncompressed_md5(SHARED_MNIST / name) == MNIST_MD5[name]


@needs_mnist
def test_recompressed_file_with_same_content_loads(tmp_path: Path) -> None:
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES])
    content = gzip.decompress((SHARED_MNIST / TEST_LABELS).read_bytes())  # type: ignore[operator]
    (target / TEST_LABELS).write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    data = load_mnist(target, download=False)
    assert data.test_labels.shape == (10_000,)


# --------------------------------------------------------------------------------------
# Bad files.
# --------------------------------------------------------------------------------------


@needs_mnist
def test_checksum_mismatch_raises_data_error(tmp_path: Path) -> None:
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES])
    (target / TEST_LABELS).write_bytes(_corrupt_gzip(TEST_LABELS))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz failed its checksum") as info:
        load_mnist(target, download=False)
    assert MNIST_MD5[TEST_LABELS] in str(info.value)
    assert isinstance(info.value, OSError)


@needs_mnist
def test_file_that_is_not_gzip_raises_data_error(tmp_path: Path) -> None:
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES])
    (target / TEST_LABELS).write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is not a valid gzip"):
        load_mnist(target, download=False)


@needs_mnist
def test_truncated_gzip_raises_data_error(tmp_path: Path) -> None:
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES])
    good = (SHARED_MNIST / TEST_LABELS).read_bytes()  # type: ignore[operator]
    (target / TEST_LABELS).write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz"):
        load_mnist(target, download=False)


@needs_mnist
def test_missing_files_without_download_name_files_and_folder(tmp_path: Path) -> None:
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TEST_IMAGES, TEST_LABELS])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz") as info:
        load_mnist(target, download=False)
    message = str(info.value)
    assert str(target) in message
    assert TRAIN_IMAGES not in message.split("Call")[0]  # only the missing file is listed
    assert DATA_DIR_ENV in message


def test_empty_folder_without_download_lists_all_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path / "nothing-here", download=False)
    for name in MNIST_FILES:
        assert name in str(info.value)
    assert not (tmp_path / "nothing-here").exists()


def test_data_dir_that_is_a_file_raises_data_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        load_mnist(not_a_folder, download=False)


def test_parse_idx_reads_labels_and_images() -> None:
    labels = parse_idx(_idx(IDX_LABELS_MAGIC, (3,), bytes([7, 2, 1])), expected_magic=2049)
    assert labels.dtype == torch.uint8
    assert labels.tolist() == [7, 2, 1]
    images = parse_idx(
        _idx(IDX_IMAGES_MAGIC, (2, 2, 3), bytes(range(12))), expected_magic=IDX_IMAGES_MAGIC
    )
    assert images.shape == (2, 2, 3)
    assert images[1, 1].tolist() == [9, 10, 11]


def test_parse_idx_bad_magic_raises_data_error() -> None:
    labels_file = _idx(IDX_LABELS_MAGIC, (3,), bytes([7, 2, 1]))
    with pytest.raises(DataError, match=r"labels\.bin is not an IDX images file.*magic"):
        parse_idx(labels_file, expected_magic=IDX_IMAGES_MAGIC, source="labels.bin")
    with pytest.raises(DataError, match="magic number 1"):
        parse_idx(struct.pack(">II", 1, 0), expected_magic=IDX_LABELS_MAGIC)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        pytest.param(b"", r"truncated: 0 bytes", id="empty"),
        pytest.param(b"\x00\x00\x08", r"truncated: 3 bytes", id="short-magic"),
        pytest.param(
            struct.pack(">II", IDX_IMAGES_MAGIC, 5), r"shorter than its 16-byte", id="header"
        ),
        pytest.param(
            _idx(IDX_IMAGES_MAGIC, (2, 28, 28), bytes(28 * 28)), r"requires 1584", id="pixels"
        ),
    ],
)
def test_parse_idx_truncated_raises_data_error(payload: bytes, match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_idx(payload, expected_magic=IDX_IMAGES_MAGIC)


def test_parse_idx_trailing_bytes_raise_data_error() -> None:
    with pytest.raises(DataError, match="2 unexpected trailing bytes"):
        parse_idx(_idx(IDX_LABELS_MAGIC, (1,), b"\x01\x02\x03"), expected_magic=IDX_LABELS_MAGIC)


def test_parse_idx_rejects_unknown_expected_magic() -> None:
    with pytest.raises(PlanError, match="expected_magic=2050"):
        parse_idx(b"", expected_magic=2050)


# --------------------------------------------------------------------------------------
# Downloading from a local HTTP server.
# --------------------------------------------------------------------------------------


@needs_mnist
def test_download_then_load(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    _copy_files(root / "mirror", MNIST_FILES)
    target = tmp_path / "downloaded" / "mnist"
    data = load_mnist(target, mirrors=(base + "mirror/",), timeout=5.0)
    assert data.train_images.shape == (60_000, 1, 28, 28)
    assert data.source == target
    assert sorted(p.name for p in target.iterdir()) == sorted(MNIST_FILES)
    # A second call finds the verified files and needs no mirror at all.
    again = load_mnist(target, mirrors=(f"http://127.0.0.1:{_closed_port()}/",))
    assert again.source == target


@needs_mnist
def test_download_falls_back_to_second_mirror(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    (root / "bad").mkdir()
    (root / "bad" / TEST_LABELS).write_bytes(_corrupt_gzip(TEST_LABELS))
    _copy_files(root / "good", [TEST_LABELS])
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES])
    load_mnist(target, mirrors=(base + "bad/", base + "good"), timeout=5.0)
    assert _uncompressed_md5(target / TEST_LABELS) == MNIST_MD5[TEST_LABELS]
    assert sorted(p.name for p in target.iterdir()) == sorted(MNIST_FILES)  # no temp files


@needs_mnist
def test_download_replaces_corrupt_local_file(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    _copy_files(root / "good", [TRAIN_LABELS])
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TEST_IMAGES, TEST_LABELS])
    (target / TRAIN_LABELS).write_bytes(_corrupt_gzip(TRAIN_LABELS))
    data = load_mnist(target, mirrors=(base + "good/",), timeout=5.0)
    assert data.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert sorted(p.name for p in target.iterdir()) == sorted(MNIST_FILES)


@needs_mnist
def test_all_mirrors_corrupt_leaves_nothing_behind(
    tmp_path: Path, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    for mirror in ("one", "two"):
        (root / mirror).mkdir()
        for name in MNIST_FILES:
            (root / mirror / name).write_bytes(gzip.compress(b"not mnist at all", mtime=0))
    target = tmp_path / "target"
    mirrors = (base + "one/", base + "two/")
    with pytest.raises(DataError) as info:
        load_mnist(target, mirrors=mirrors, timeout=5.0)
    message = str(info.value)
    assert TRAIN_IMAGES in message
    assert base + "one/" + TRAIN_IMAGES in message
    assert base + "two/" + TRAIN_IMAGES in message
    assert "checksum" in message
    assert DATA_DIR_ENV in message
    assert list(target.iterdir()) == []  # no final file, no temp file


def test_unreachable_mirror_raises_data_error_naming_it(tmp_path: Path) -> None:
    mirror = f"http://127.0.0.1:{_closed_port()}/mnist/"
    target = tmp_path / "target"
    with pytest.raises(DataError, match="unreachable") as info:
        load_mnist(target, mirrors=(mirror,), timeout=5.0)
    assert mirror + TRAIN_IMAGES in str(info.value)
    assert "place the MNIST files" in str(info.value)
    assert list(target.iterdir()) == []


def test_download_failure_says_first_that_the_folder_lacks_mnist(tmp_path: Path) -> None:
    target = tmp_path / "mnist"
    target.mkdir()
    mirror = f"http://127.0.0.1:{_closed_port()}/mnist/"
    with pytest.raises(DataError) as info:
        load_mnist(target, mirrors=(mirror,), timeout=5.0)
    message = str(info.value)
    assert message.startswith(f"MNIST data folder {str(target)!r} does not hold MNIST: missing ")
    assert all(name in message.split("Downloading")[0] for name in MNIST_FILES)
    assert message.index("does not hold MNIST") < message.index("could not download")


def test_named_folder_that_does_not_exist_is_refused_and_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "mnsit"
    mirror = f"http://127.0.0.1:{_closed_port()}/mnist/"
    with pytest.raises(DataError, match="does not exist") as info:
        load_mnist(typo, mirrors=(mirror,), timeout=5.0, create_folder=False)
    message = str(info.value)
    assert str(typo) in message and DATA_DIR_ENV in message
    assert all(name in message for name in MNIST_FILES)
    assert "could not download" not in message  # nothing was tried
    assert not typo.exists()


def test_folder_that_cannot_be_created_raises_data_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match=r"does not hold MNIST: missing .* cannot be written"):
        load_mnist(tmp_path / "file" / "mnist")


def test_create_folder_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="create_folder='no'"):
        load_mnist(tmp_path, download=False, create_folder="no")


def test_http_404_is_reported(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    _, base = http_root
    with pytest.raises(DataError, match="HTTP error 404"):
        load_mnist(tmp_path / "target", mirrors=(base,), timeout=5.0)
    assert list((tmp_path / "target").iterdir()) == []


def test_oversized_response_is_refused(
    tmp_path: Path, http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base = http_root
    (root / TRAIN_IMAGES).write_bytes(bytes(4096))
    monkeypatch.setattr(data_module, "_MAX_DOWNLOAD_BYTES", 1000)
    monkeypatch.setattr(data_module, "_CHUNK_BYTES", 256)
    with pytest.raises(DataError, match="larger than 1000 bytes"):
        load_mnist(tmp_path / "target", mirrors=(base,), timeout=5.0)
    assert list((tmp_path / "target").iterdir()) == []


@needs_mnist
def test_mirrors_env_var_overrides_defaults(
    tmp_path: Path, http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base = http_root
    _copy_files(root / "good", [TEST_LABELS])
    target = _copy_files(tmp_path / "mnist", [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES])
    dead = f"http://127.0.0.1:{_closed_port()}/"
    monkeypatch.setenv(MIRRORS_ENV, f" {dead} , {base}good/ ,")
    load_mnist(target, timeout=5.0)
    assert _uncompressed_md5(target / TEST_LABELS) == MNIST_MD5[TEST_LABELS]


def test_mirror_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRRORS_ENV)
    assert data_module._resolve_mirrors(None) == DEFAULT_MIRRORS
    monkeypatch.setenv(MIRRORS_ENV, "https://a.example/x/,https://b.example/")
    assert data_module._resolve_mirrors(None) == ("https://a.example/x/", "https://b.example/")
    assert data_module._resolve_mirrors(["file:///m/"]) == ("file:///m/",)
    monkeypatch.setenv(MIRRORS_ENV, "ftp://c.example/")
    with pytest.raises(PlanError, match=MIRRORS_ENV):
        data_module._resolve_mirrors(None)


@needs_mnist
def test_bad_mirrors_env_does_not_break_offline_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRRORS_ENV, "ftp://c.example/")
    assert load_mnist(SHARED_MNIST, download=False).test_labels.shape == (10_000,)
    with pytest.raises(PlanError, match=MIRRORS_ENV):
        load_mnist(SHARED_MNIST)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"mirrors": "https://a.example/"}, "mirrors", id="single-string"),
        pytest.param({"mirrors": ()}, "mirrors", id="empty"),
        pytest.param({"mirrors": ("ftp://a.example/",)}, "mirrors", id="ftp"),
        pytest.param({"mirrors": ("a.example/mnist",)}, "mirrors", id="no-scheme"),
        pytest.param({"timeout": 0.0}, "timeout", id="timeout-zero"),
        pytest.param({"timeout": float("nan")}, "timeout", id="timeout-nan"),
        pytest.param({"timeout": float("inf")}, "timeout", id="timeout-inf"),
        pytest.param({"timeout": True}, "timeout", id="timeout-bool"),
    ],
)
def test_download_argument_validation(tmp_path: Path, kwargs: dict, field: str) -> None:
    with pytest.raises(PlanError, match=rf"^{field}=") as info:
        load_mnist(tmp_path / "target", **kwargs)
    assert info.value.field == field
    assert not (tmp_path / "target").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_raises_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="device='cuda'"):
        load_mnist(tmp_path, download=False, device="cuda")


def test_bogus_device_raises_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="device='not-a-device'"):
        load_mnist(tmp_path, download=False, device="not-a-device")


# --------------------------------------------------------------------------------------
# Resolving the data folder.
# --------------------------------------------------------------------------------------


def test_resolve_data_dir_prefers_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "from-env"))
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_resolve_data_dir_uses_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "from-env"))
    assert resolve_data_dir() == tmp_path / "from-env"
    assert resolve_data_dir(None) == tmp_path / "from-env"


@needs_mnist
def test_load_mnist_reads_folder_from_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(SHARED_MNIST))
    assert load_mnist(download=False).source == SHARED_MNIST


def test_resolve_data_dir_cache_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "dpplan" / "mnist"
    monkeypatch.setenv(DATA_DIR_ENV, "")  # empty counts as unset
    assert resolve_data_dir() == tmp_path / "xdg" / "dpplan" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # XDG says: ignore relative
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "dpplan" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "dpplan" / "mnist"


def test_resolve_data_dir_rejects_bad_values() -> None:
    with pytest.raises(PlanError, match="data_dir=''"):
        resolve_data_dir("")
    with pytest.raises(PlanError, match="data_dir=42"):
        resolve_data_dir(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Validation split.
# --------------------------------------------------------------------------------------


def _toy_set(size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(size, dtype=torch.float32).reshape(size, 1, 1, 1).expand(size, 1, 2, 2)
    return images.contiguous(), torch.arange(size) * 10  # label = 10 * image id


def test_split_validation_sizes_disjoint_and_covering() -> None:
    images, labels = _toy_set()
    (train_x, train_y), (val_x, val_y) = split_validation(
        images, labels, validation_size=20, seed=7
    )
    assert train_x.shape == (80, 1, 2, 2)
    assert val_x.shape == (20, 1, 2, 2)
    assert train_y.shape == (80,)
    assert val_y.shape == (20,)
    train_ids = set(train_x[:, 0, 0, 0].long().tolist())
    val_ids = set(val_x[:, 0, 0, 0].long().tolist())
    assert train_ids.isdisjoint(val_ids)
    assert train_ids | val_ids == set(range(100))
    # Labels stay paired with their images.
    assert torch.equal(train_y, labels[train_x[:, 0, 0, 0].long()])
    assert torch.equal(val_y, labels[val_x[:, 0, 0, 0].long()])


def test_split_validation_is_deterministic_for_a_seed() -> None:
    images, labels = _toy_set()
    first = split_validation(images, labels, validation_size=30, seed=123)
    second = split_validation(images, labels, validation_size=30, seed=123)
    other = split_validation(images, labels, validation_size=30, seed=124)
    for (a_x, a_y), (b_x, b_y) in zip(first, second, strict=True):
        assert torch.equal(a_x, b_x)
        assert torch.equal(a_y, b_y)
    assert not torch.equal(first[1][1], other[1][1])
    # The split does not depend on the global RNG.
    torch.manual_seed(0)
    third = split_validation(images, labels, validation_size=30, seed=123)
    assert torch.equal(first[1][1], third[1][1])


def test_split_validation_zero_keeps_everything_for_training() -> None:
    images, labels = _toy_set(10)
    (train_x, train_y), (val_x, val_y) = split_validation(images, labels, validation_size=0, seed=0)
    assert torch.equal(train_x, images)
    assert torch.equal(train_y, labels)
    assert len(val_x) == 0
    assert len(val_y) == 0


@pytest.mark.parametrize(
    "validation_size",
    [-1, 10, 11, 2.0, 0.5, True, float("nan"), None],
    ids=["negative", "all", "past-all", "float", "fraction", "bool", "nan", "none"],
)
def test_split_validation_rejects_bad_size(validation_size: object) -> None:
    images, labels = _toy_set(10)
    with pytest.raises(PlanError, match=r"validation_size=.*\[0, 9\]") as info:
        split_validation(images, labels, validation_size=validation_size, seed=0)  # type: ignore[arg-type]
    assert info.value.field == "validation_size"


@pytest.mark.parametrize("seed", [-1, 2**63, 1.0, True, None], ids=str)
def test_split_validation_rejects_bad_seed(seed: object) -> None:
    images, labels = _toy_set(10)
    with pytest.raises(PlanError, match=r"^seed="):
        split_validation(images, labels, validation_size=1, seed=seed)  # type: ignore[arg-type]


def test_split_validation_rejects_length_mismatch() -> None:
    images, labels = _toy_set(10)
    with pytest.raises(PlanError, match=r"^labels=.*as many labels as images \(10\)"):
        split_validation(images, labels[:9], validation_size=1, seed=0)


@needs_mnist
def test_split_validation_on_real_mnist(mnist: MnistData) -> None:
    (train_x, train_y), (val_x, val_y) = split_validation(
        mnist.train_images, mnist.train_labels, validation_size=5_000, seed=0
    )
    assert train_x.shape == (55_000, 1, 28, 28)
    assert val_x.shape == (5_000, 1, 28, 28)
    assert train_y.dtype == torch.int64
    assert torch.unique(val_y).tolist() == list(range(10))
