"""Download and safely extract the Speech Commands archive: resumable, checked, idempotent (stdlib only)."""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from tqdm import tqdm

OFFICIAL_V2_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
OFFICIAL_V1_URL = "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz"
# The official archives' sizes and checksums are not pinned here (not verified from this machine):
# pass expected_size / sha256 to check a download.


def _sha256(path: Path, chunk_size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, part: Path, chunk_size: int, progress: bool) -> None:
    """Stream `url` into `part`, continuing from its current size with an HTTP Range request."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the .part already holds the whole file
            return
        raise OSError(f"download of {url} failed: HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise OSError(f"download of {url} failed: {error.reason}") from error
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored the Range header: start over
        remaining = response.headers.get("Content-Length")
        total = have + int(remaining) if remaining is not None else None
        with (
            part.open("ab" if resumed else "wb") as file,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name, disable=not progress) as bar,
        ):
            while chunk := response.read(chunk_size):
                file.write(chunk)
                bar.update(len(chunk))


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        raise ValueError(f"{archive}: unsafe archive member {member.name!r}: absolute path")
    if ".." in name.parts:
        raise ValueError(f"{archive}: unsafe archive member {member.name!r}: '..' would escape the folder")
    if member.issym() or member.islnk():
        raise ValueError(f"{archive}: unsafe archive member {member.name!r}: links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{archive}: unsafe archive member {member.name!r}: devices/FIFOs are not allowed")


def safe_extract(archive: Path, root: Path) -> None:
    """Extract a .tar.gz into `root` after checking every member; nothing is written if one is unsafe."""
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member, archive)
        tar.extractall(root, members=members, filter="data")


def download(
    root: str | os.PathLike,
    url: str = OFFICIAL_V2_URL,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download `url` into `root/<archive>.part` (resuming), verify it, extract it into `root`.

    A marker file `root/.<archive>.done` makes a second call return at once. Returns `root`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archive_name = PurePosixPath(urllib.request.urlparse(url).path).name or "archive.tar.gz"
    marker = root / f".{archive_name}.done"
    if marker.exists():
        return root
    part = root / f"{archive_name}.part"
    if expected_size is not None and part.exists() and part.stat().st_size > expected_size:
        part.unlink()  # longer than the real file: cannot be a prefix of it
    _fetch(url, part, chunk_size, progress)

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        raise ValueError(f"{part}: size {size} bytes, expected {expected_size}; run again to resume")
    if sha256 is not None:
        actual = _sha256(part, chunk_size)
        if actual != sha256.lower():
            part.unlink()
            raise ValueError(f"{url}: sha256 mismatch (expected {sha256}, got {actual}); the download was removed")
    safe_extract(part, root)
    part.unlink()
    marker.write_text(f"{url}\n")
    return root
