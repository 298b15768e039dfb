"""`pandagpt fetch-weights`: download the public PandaGPT pieces into a cache dir.

- the PandaGPT delta `pytorch_model.pt` from the Hugging Face repo
  `openllmplayground/pandagpt_<variant>` (via `huggingface_hub`);
- `imagebind_huge.pth` (4.5 GB) from Meta's CDN, streamed with httpx and
  resumed with an HTTP Range request after an interruption.

Each file's sha256 goes into `<cache>/checksums.json`, which `convert` users
can compare with the manifest's source checksums. Vicuna is not here: its
LLaMA base has to be obtained and merged by the user (licence), see README.
Nothing in the service downloads at run time; this command is the only one.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from service.weights.layout import sha256_file

HF_REPO = "openllmplayground/pandagpt_{variant}"
DELTA_FILE = "pytorch_model.pt"
IMAGEBIND_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
IMAGEBIND_FILE = "imagebind_huge.pth"
CHECKSUMS = "checksums.json"

# (repo_id, filename, local_dir) -> path of the downloaded file
HubDownload = Callable[[str, str, Path], Path]


class FetchError(RuntimeError):
    """A download failed after its retries; the message names the URL."""


def hub_download(repo_id: str, filename: str, local_dir: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_dir=local_dir))


def _total_from(response: httpx.Response, offset: int) -> int | None:
    """Full file size from Content-Range ("bytes a-b/N") or Content-Length."""
    content_range = response.headers.get("content-range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("content-length")
    return int(length) + offset if length is not None else None


def download_resumable(
    url: str,
    dest: Path,
    *,
    client: httpx.Client | None = None,
    attempts: int = 5,
) -> Path:
    """Stream `url` to `dest`, resuming `dest.part` with a Range request when it exists.

    A server that ignores Range (200 instead of 206) restarts the file from
    zero; a dropped connection is retried from the bytes already written.
    """
    if dest.exists():
        return dest
    part = dest.with_name(dest.name + ".part")
    own_client = client is None
    client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0))
    last_error: Exception | None = None
    try:
        for _ in range(attempts):
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                with client.stream("GET", url, headers=headers) as response:
                    if response.status_code == 416 and offset:
                        # Range past the end: the part file is already complete.
                        break
                    response.raise_for_status()
                    if response.status_code == 200:
                        offset = 0  # Range ignored: start over
                    total = _total_from(response, offset)
                    mode = "ab" if offset else "wb"
                    with (
                        part.open(mode) as fh,
                        tqdm(
                            total=total,
                            initial=offset,
                            unit="B",
                            unit_scale=True,
                            desc=dest.name,
                        ) as bar,
                    ):
                        for chunk in response.iter_bytes():
                            fh.write(chunk)
                            bar.update(len(chunk))
                    if total is not None and part.stat().st_size != total:
                        raise FetchError(f"{url}: got {part.stat().st_size} of {total} bytes")
                    break
            except (httpx.TransportError, FetchError) as exc:
                last_error = exc
        else:
            raise FetchError(f"{url}: download failed after {attempts} attempts") from last_error
    except httpx.HTTPStatusError as exc:
        raise FetchError(f"{url}: HTTP {exc.response.status_code}") from exc
    finally:
        if own_client:
            client.close()
    part.rename(dest)
    return dest


def record_checksums(
    cache_dir: Path, files: dict[str, tuple[Path, str]]
) -> dict[str, dict[str, Any]]:
    """Add {name: {path, sha256, size, source}} to `<cache>/checksums.json`."""
    path = cache_dir / CHECKSUMS
    data: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
    for name, (file, source) in files.items():
        data[name] = {
            "path": str(file.relative_to(cache_dir)),
            "sha256": sha256_file(file),
            "size": file.stat().st_size,
            "source": source,
        }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def fetch_weights(
    variant: str,
    cache_dir: Path,
    *,
    skip_imagebind: bool = False,
    imagebind_url: str = IMAGEBIND_URL,
    hub: HubDownload = hub_download,
    client: httpx.Client | None = None,
) -> dict[str, dict[str, Any]]:
    """Download the delta (and ImageBind) into cache_dir; return the checksum records."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    repo = HF_REPO.format(variant=variant)
    delta_dir = cache_dir / f"pandagpt_{variant}"  # convert names the model after this folder
    delta = hub(repo, DELTA_FILE, delta_dir)
    files = {f"pandagpt_{variant}": (delta, f"hf://{repo}/{DELTA_FILE}")}
    if not skip_imagebind:
        image_bind = download_resumable(imagebind_url, cache_dir / IMAGEBIND_FILE, client=client)
        files["imagebind_huge"] = (image_bind, imagebind_url)
    return record_checksums(cache_dir, files)


def run_fetch_cli(args: argparse.Namespace) -> int:
    try:
        records = fetch_weights(args.variant, args.cache_dir, skip_imagebind=args.skip_imagebind)
    except FetchError as exc:
        print(f"pandagpt fetch-weights: error: {exc}")
        return 2
    for name, rec in records.items():
        print(f"{name}: {args.cache_dir / rec['path']} sha256 {rec['sha256']}")
    return 0
