"""Fetch Debian packages and unpack them into a cache folder, without root and without installing them.

Real recorded speech with transcripts ships in Debian's archive (the Asterisk prompt packages), so the corpus
builders and the tests get it through the ordinary package client: `apt-get download` then `dpkg-deb -x`. Each
package is unpacked once per cache folder; later calls reuse it. A file lock makes concurrent callers (several test
processes on one machine) wait for each other instead of unpacking over each other.
"""
from __future__ import annotations

import fcntl
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class DebianFetchError(RuntimeError):
    """A package could not be downloaded or unpacked; the message is one line that says what to do."""


def fetch_debian_packages(packages: Sequence[str], cache_dir: str | Path, debs_dir: str | Path | None = None) -> Path:
    """Unpack `packages` into `cache_dir/root` and return that root (the packages' files keep their paths under it).

    A package's .deb is taken from `debs_dir` when it holds one (for machines without apt lists or network), else
    from earlier downloads in `cache_dir/debs`, else downloaded there with `apt-get download`.
    """
    cache_dir = Path(cache_dir)
    root = cache_dir / "root"
    markers = cache_dir / "unpacked"
    markers.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(cache_dir / ".lock"):
        missing = [package for package in packages if not (markers / package).exists()]
        if missing:
            debs = _locate_debs(missing, cache_dir / "debs", Path(debs_dir) if debs_dir else None)
            for package in missing:
                _unpack(debs[package], root)
                (markers / package).write_text(debs[package].name + "\n")
    return root


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _locate_debs(packages: list[str], download_dir: Path, debs_dir: Path | None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for folder in (debs_dir, download_dir):
            deb = _deb_in(folder, package) if folder else None
            if deb:
                found[package] = deb
                break
    to_download = [package for package in packages if package not in found]
    if to_download:
        _apt_download(to_download, download_dir)
        for package in to_download:
            deb = _deb_in(download_dir, package)
            if deb is None:
                raise DebianFetchError(f"apt-get download did not leave a .deb for {package} in {download_dir}")
            found[package] = deb
    return found


def _deb_in(folder: Path, package: str) -> Path | None:
    """The one `package_VERSION_ARCH.deb` in `folder` (None when there is none)."""
    candidates = sorted(folder.glob(f"{package}_*.deb"))
    if len(candidates) > 1:
        names = ", ".join(path.name for path in candidates)
        raise DebianFetchError(f"{folder}: several .deb files for {package} ({names}); keep only one")
    return candidates[0] if candidates else None


def _apt_download(packages: list[str], download_dir: Path) -> None:
    download_dir.mkdir(parents=True, exist_ok=True)
    advice = (
        "run `apt-get update` and rerun, or download the .deb files by hand (https://packages.debian.org/) "
        "into a folder and pass it with --debs DIR"
    )
    try:
        result = subprocess.run(["apt-get", "download", *packages], cwd=download_dir, capture_output=True, text=True)
    except FileNotFoundError:
        raise DebianFetchError(f"cannot fetch {' '.join(packages)}: apt-get is not installed; {advice}") from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        errors = [line for line in lines if line.startswith("E:")] or lines
        raise DebianFetchError(f"cannot fetch {' '.join(packages)} ({errors[-1]}); {advice}")


def _unpack(deb: Path, root: Path) -> None:
    try:
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
    except FileNotFoundError:
        raise DebianFetchError(f"cannot unpack {deb}: dpkg-deb is not installed (install dpkg)") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise DebianFetchError(f"cannot unpack {deb}: {detail}; delete it and rerun to fetch it again")
