"""Photo evidence: type and size checks, SHA-256 dedupe, EXIF capture time, storage.

Storage is a small interface: a local directory by default (``CARBONGRAPH_EVIDENCE_DIR``,
``./var/evidence``), or an S3-compatible bucket when ``CARBONGRAPH_EVIDENCE_S3_BUCKET`` is set
(``CARBONGRAPH_EVIDENCE_S3_ENDPOINT`` for MinIO and the like; credentials from the usual AWS
environment; needs ``boto3``). Files are named by their SHA-256, so a store never holds a photo
twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

MAX_BYTES = 5 * 1024 * 1024
EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 36867
DATE_TIME = 306


class EvidenceError(ValueError):
    """The upload is not acceptable evidence (code INVALID_EVIDENCE)."""


def sniff(data: bytes) -> str:
    """The real type by magic bytes, whatever the client said."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise EvidenceError("evidence must be a JPEG, PNG or WebP image")


def captured_at(data: bytes) -> datetime | None:
    """EXIF DateTimeOriginal (or DateTime), if the photo carries one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            raw = exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    except (UnidentifiedImageError, OSError, ValueError):
        raise EvidenceError("the image cannot be read") from None
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


@dataclass(frozen=True)
class Checked:
    sha256: str
    content_type: str
    size: int
    captured_at: datetime | None


def check(data: bytes) -> Checked:
    if len(data) > MAX_BYTES:
        raise EvidenceError(f"evidence is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if not data:
        raise EvidenceError("evidence is empty")
    content_type = sniff(data)
    return Checked(hashlib.sha256(data).hexdigest(), content_type, len(data), captured_at(data))


class EvidenceStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...


class LocalDirectoryStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        def write() -> None:
            path = self.root / key[:2] / key
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            try:
                partial.write_bytes(data)  # a full disk fails here, before anything is visible
                partial.replace(path)
            except OSError:
                partial.unlink(missing_ok=True)  # no half-written file left to fill the disk
                raise

        await asyncio.to_thread(write)


class S3Store:
    def __init__(self, bucket: str, endpoint_url: str | None = None) -> None:
        try:
            import boto3  # type: ignore[import-not-found]
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise RuntimeError("the S3 evidence store needs boto3 (pip install boto3)") from exc
        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    async def put(self, key: str, data: bytes, content_type: str) -> None:  # pragma: no cover
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )


def store_from_env() -> EvidenceStore:
    bucket = os.environ.get("CARBONGRAPH_EVIDENCE_S3_BUCKET")
    if bucket:
        return S3Store(bucket, os.environ.get("CARBONGRAPH_EVIDENCE_S3_ENDPOINT") or None)
    return LocalDirectoryStore(Path(os.environ.get("CARBONGRAPH_EVIDENCE_DIR", "var/evidence")))
