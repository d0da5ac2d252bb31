"""tests/fixtures/hub-cache/: a Hugging Face hub cache laid out by the real `huggingface_hub`.

A fixture model directory (`llama-linear`, without its reference files) is served on 127.0.0.1
in the hub's URL layout by a small HTTP server here, and `huggingface_hub.snapshot_download`
downloads it from that server into a fresh cache directory, exactly as it downloads from the hub:
`models--zoo-fixtures--llama-linear/` with `blobs/` (files named by their etag), `snapshots/<commit>/`
(relative symlinks into `blobs/`), `refs/main` (the commit) and whatever else the installed
version writes (the tree listing, `.locks/`). zoo's tests resolve `zoo-fixtures/llama-linear` in
it with `HF_HUB_CACHE` pointing there and `HF_HUB_OFFLINE=1`, and compare the output with the
fixture directory's.

The blobs are byte for byte the fixture's files, so git stores them once.

Run on its own (only `huggingface_hub` is needed, see scripts/requirements.txt):

    python xtask/python/hub_cache.py --fixtures tests/fixtures
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import huggingface_hub

#: The fixture served, the id it is served under, and the cache folder written.
SOURCE = "llama-linear"
REPO_ID = "zoo-fixtures/llama-linear"
OUT = "hub-cache"
#: Files of the fixture directory that a hub repo of the model would not hold.
NOT_SERVED = {"reference.json", "chat_reference.json"}
#: Files stored through Git LFS on the hub (their etag is the content's sha256).
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf")

README = """\
# A Hugging Face hub cache

Made by `xtask/python/hub_cache.py` (`cargo xtask gen-fixtures --only hub-cache`): the
`llama-linear` fixture, served on 127.0.0.1 in the hub's URL layout as the repository
`zoo-fixtures/llama-linear`, downloaded into this folder by `huggingface_hub.snapshot_download`
(huggingface_hub {version}). Everything under `models--zoo-fixtures--llama-linear/` and `.locks/`
is as that package wrote it: blobs named by etag, snapshot symlinks, `refs/main`.
"""


class Repo:
    """One model repository at one commit: file name -> bytes, with the hub's per-file ids."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        listing = "".join(f"{name}\0{self.sha256(name)}\n" for name in sorted(files))
        self.commit = hashlib.sha1(listing.encode()).hexdigest()

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()

    def git_oid(self, name: str) -> str:
        """The git blob id (what the hub reports for a file kept in git itself)."""
        data = self.files[name]
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def etag(self, name: str) -> str:
        return self.sha256(name) if self.is_lfs(name) else self.git_oid(name)

    def info(self) -> dict[str, Any]:
        """`GET /api/models/{id}/revision/{rev}`."""
        return {
            "_id": self.commit[:24], "id": REPO_ID, "modelId": REPO_ID, "sha": self.commit,
            "private": False, "gated": False, "disabled": False, "tags": [],
            "siblings": [{"rfilename": name} for name in sorted(self.files)],
        }

    def tree(self) -> list[dict[str, Any]]:
        """`GET /api/models/{id}/tree/{rev}`: one page, every file."""
        entries = []
        for name in sorted(self.files):
            entry: dict[str, Any] = {"type": "file", "oid": self.git_oid(name), "size": len(self.files[name]),
                                     "path": name}
            if self.is_lfs(name):
                entry["lfs"] = {"oid": self.sha256(name), "size": len(self.files[name]), "pointerSize": 134}
            entries.append(entry)
        return entries


def handler_for(repo: Repo) -> type[BaseHTTPRequestHandler]:
    """A request handler serving `repo` under REPO_ID at revision `main` and at its commit."""
    revisions = {"main", repo.commit}
    api = f"/api/models/{REPO_ID}/"
    resolve = f"/{REPO_ID}/resolve/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
            pass

        def do_HEAD(self) -> None:
            self.respond(head=True)

        def do_GET(self) -> None:
            self.respond(head=False)

        def respond(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            if path.startswith(api + "revision/") and path[len(api + "revision/"):] in revisions:
                return self.send_json(repo.info())
            if path.startswith(api + "tree/") and path[len(api + "tree/"):].split("/")[0] in revisions:
                return self.send_json(repo.tree())
            if path.startswith(resolve):
                revision, _, name = path[len(resolve):].partition("/")
                if revision in revisions and name in repo.files:
                    return self.send_file(name, head)
            self.send_error(404, "Entry not found")

        def send_json(self, value: Any) -> None:
            body = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def send_file(self, name: str, head: bool) -> None:
            data = repo.files[name]
            start, end = self.byte_range(len(data))
            self.send_response(206 if (start, end) != (0, len(data)) else 200)
            self.send_header("X-Repo-Commit", repo.commit)
            if repo.is_lfs(name):
                self.send_header("X-Linked-Etag", f'"{repo.etag(name)}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{repo.etag(name)}"')
            self.send_header("Accept-Ranges", "bytes")
            if (start, end) != (0, len(data)):
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.send_header("Content-Length", str(end - start))
            self.end_headers()
            if not head:
                self.wfile.write(data[start:end])

        def byte_range(self, size: int) -> tuple[int, int]:
            """The `Range: bytes=a-[b]` asked for, as [start, end); the whole file without one."""
            asked = self.headers.get("Range", "")
            if not asked.startswith("bytes="):
                return 0, size
            first, _, last = asked[len("bytes="):].partition("-")
            start = int(first)
            end = int(last) + 1 if last else size
            return start, min(end, size)

    return Handler


def served_files(fixture: Path) -> dict[str, bytes]:
    """The fixture directory's files a hub repo would hold (symlinks read through)."""
    return {p.name: p.read_bytes() for p in sorted(fixture.iterdir()) if p.is_file() and p.name not in NOT_SERVED}


def download(repo: Repo, cache: Path) -> Path:
    """Serves `repo` on 127.0.0.1 and lets huggingface_hub download it into `cache`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(repo))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        snapshot = huggingface_hub.snapshot_download(REPO_ID, cache_dir=cache, endpoint=endpoint, token=False)
    finally:
        server.shutdown()
        server.server_close()
    return Path(snapshot)


def check(repo: Repo, snapshot: Path) -> None:
    """The snapshot holds every file, each a symlink to its blob with the served bytes."""
    if snapshot.name != repo.commit:
        raise AssertionError(f"snapshot {snapshot} is not at commit {repo.commit}")
    refs = snapshot.parent.parent / "refs" / "main"
    if refs.read_text() != repo.commit:
        raise AssertionError(f"{refs} does not hold {repo.commit}")
    for name, data in repo.files.items():
        link = snapshot / name
        if not link.is_symlink() or link.read_bytes() != data:
            raise AssertionError(f"{link}: not a symlink to the served bytes")


def write_hub_cache(fixtures: Path) -> None:
    """Writes fixtures/OUT from fixtures/SOURCE (replacing it)."""
    repo = Repo(served_files(fixtures / SOURCE))
    out = fixtures / OUT
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / OUT
        check(repo, download(repo, cache))
        (cache / "README.md").write_text(README.format(version=huggingface_hub.__version__))
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(cache), out)
    print(f"{OUT}: {REPO_ID} at {repo.commit} laid out by huggingface_hub {huggingface_hub.__version__}",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, required=True, help="fixtures root, e.g. tests/fixtures")
    write_hub_cache(parser.parse_args(argv).fixtures)


if __name__ == "__main__":
    main()
