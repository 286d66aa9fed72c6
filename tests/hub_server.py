"""A local, in-memory **test double of the Hugging Face Hub** (stdlib only).

The real Hub cannot be reached from the test machines, so the test suite points ``HF_ENDPOINT`` at this
server and lets the real ``huggingface_hub`` client (2.x, with ``HF_HUB_DISABLE_XET=1``) talk to it. It
implements only the HTTP endpoints that ``huggingface_hub`` calls for ``create_repo``, ``create_branch``,
``upload_folder`` / ``create_commit`` (preupload, LFS batch + upload + verify, NDJSON commit),
``hf_hub_download`` / ``snapshot_download`` (repo info, tree listing, resolve), ``get_paths_info``,
``list_repo_refs``, ``list_repo_commits`` and ``whoami``. It is **not** a Hub implementation: no git, no
permissions model beyond one write token and one read-only token, no pagination, no Xet.

State lives in memory: repos (model and dataset types), branches, commits (one sha per commit), the files
of every commit, and each repo's LFS objects (content-addressed by sha256).

Failure injection, for the tests of error handling:

* :meth:`LocalHub.fail_next` makes the next matching requests fail with an HTTP status, or drop the
  connection half-way through reading the request body (an interrupted upload);
* :meth:`LocalHub.set_down` makes every request fail (connection dropped without a response, or a status);
* :meth:`LocalHub.reset` clears both.

Upload mode: the preupload answer decides whether ``huggingface_hub`` sends a file inline (base64 in the
commit, "regular") or through the LFS batch API ("lfs"). Like the real Hub, this server answers "lfs" for
files of at least :data:`LFS_THRESHOLD_BYTES` bytes, for binary-looking content (a NUL byte in the sample)
and for the usual model / index suffixes (:data:`LFS_SUFFIXES`), "regular" otherwise.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["LocalHub", "LFS_THRESHOLD_BYTES", "LFS_SUFFIXES", "free_port"]

LFS_THRESHOLD_BYTES = 1_000_000
LFS_SUFFIXES = (".safetensors", ".bin", ".faiss", ".index", ".pt", ".npy", ".arrow", ".parquet", ".h5", ".onnx")
DEFAULT_USER = "hf-ada-tester"
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.faiss filter=lfs diff=lfs merge=lfs -text\n"
_TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_PLURAL_TO_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class StoredFile:
    """One file of one commit: inline bytes (regular) or a reference to an LFS object."""

    path: str
    size: int
    content: bytes | None = None  # regular files
    lfs_sha256: str | None = None  # LFS files

    @property
    def blob_id(self) -> str:
        if self.lfs_sha256 is not None:
            return _git_blob_sha1(_lfs_pointer(self.lfs_sha256, self.size))
        return _git_blob_sha1(self.content or b"")

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.blob_id

    def tree_entry(self, last_commit: Commit | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": self.path, "size": self.size, "oid": self.blob_id}
        if self.lfs_sha256 is not None:
            pointer = _lfs_pointer(self.lfs_sha256, self.size)
            entry["lfs"] = {"oid": self.lfs_sha256, "size": self.size, "pointerSize": len(pointer)}
        if last_commit is not None:
            entry["lastCommit"] = last_commit.summary()
        return entry


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, StoredFile]

    def summary(self) -> dict[str, Any]:
        return {"id": self.sha, "title": self.title, "date": self.date}


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 hex -> content (per repo, like the Hub)
    commits: dict[str, Commit] = field(default_factory=dict)
    next_pr: int = 1

    def url(self, endpoint: str) -> str:
        return f"{endpoint}/{_TYPE_PREFIX[self.repo_type]}{self.repo_id}"

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        return self.commits.get(revision)

    def add_commit(self, parent: Commit | None, title: str, message: str, files: dict[str, StoredFile]) -> Commit:
        fingerprint = json.dumps(
            [parent.sha if parent else None, title, message, _now(), len(self.commits),
             sorted((p, f.blob_id) for p, f in files.items())]
        )
        commit = Commit(hashlib.sha1(fingerprint.encode()).hexdigest(), parent.sha if parent else None, title,
                        message, _now(), files)
        self.commits[commit.sha] = commit
        return commit

    def content(self, stored: StoredFile) -> bytes:
        if stored.lfs_sha256 is not None:
            return self.lfs_objects[stored.lfs_sha256]
        return stored.content or b""

    def history(self, head: Commit) -> list[Commit]:
        out = [head]
        while out[-1].parent is not None:
            out.append(self.commits[out[-1].parent])
        return out


@dataclass
class _Failure:
    remaining: int
    status: int | None  # None: drop the connection
    path_contains: str | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.path_contains is None or self.path_contains in path) and (
            self.method is None or self.method == method
        )


class HubError(Exception):
    """An HTTP error answer: status, X-Error-Code, message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _DropConnection(Exception):
    pass


class LocalHub:
    """The in-memory Hub test double; :meth:`start` serves it on ``127.0.0.1`` from a daemon thread.

    Args:
        token: the write token (``Authorization: Bearer <token>``) of user :data:`DEFAULT_USER`.
        read_token: a token that may read private repos but not write (writes get 403).
        port: port to bind; 0 picks a free one.
    """

    def __init__(self, token: str = "hf_ada_test_write_token", read_token: str = "hf_ada_test_read_token",
                 port: int = 0, user: str = DEFAULT_USER) -> None:
        self.token = token
        self.read_token = read_token
        self.user = user
        self._port = port
        self._lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) log, for tests that check traffic
        self._failures: list[_Failure] = []
        self._down: tuple[bool, int | None] = (False, None)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalHub:
        hub = self

        class Handler(_Handler):
            local_hub = hub

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ failure injection
    def fail_next(self, count: int = 1, status: int | None = 500, path_contains: str | None = None,
                  method: str | None = None) -> None:
        """Make the next ``count`` requests whose path contains ``path_contains`` (and whose method is
        ``method``, when given) fail with ``status``; ``status=None`` drops the connection after reading
        half of the request body (an upload interrupted mid-way)."""
        with self._lock:
            self._failures.append(_Failure(count, status, path_contains, method))

    def set_down(self, down: bool = True, status: int | None = None) -> None:
        """Refuse every request: drop the connection without an answer (``status=None``) or answer
        ``status`` (e.g. 503)."""
        with self._lock:
            self._down = (down, status)

    def reset(self) -> None:
        """Clear injected failures and the down state (repos and their history persist)."""
        with self._lock:
            self._failures.clear()
            self._down = (False, None)
            self.requests.clear()

    def _take_failure(self, method: str, path: str) -> tuple[bool, int | None]:
        with self._lock:
            if self._down[0]:
                return True, self._down[1]
            for failure in self._failures:
                if failure.remaining > 0 and failure.matches(method, path):
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        self._failures.remove(failure)
                    return True, failure.status
        return False, None

    # ------------------------------------------------------------------ inspection helpers for tests
    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Contents of every file of ``repo_id`` at ``revision``."""
        with self._lock:
            commit = self.repo(repo_id, repo_type).resolve(revision)
            assert commit is not None, f"no revision {revision!r}"
            return {p: self.repo(repo_id, repo_type).content(f) for p, f in commit.files.items()}

    # ------------------------------------------------------------------ auth
    def _user_for(self, headers: Any) -> tuple[str | None, bool]:
        """(user, can_write) for the request's bearer token; raise 401 on an unknown token."""
        auth = headers.get("Authorization") or ""
        if not auth:
            return None, False
        token = auth.removeprefix("Bearer ").strip()
        if token == self.token:
            return self.user, True
        if token == self.read_token:
            return self.user, False
        raise HubError(401, "Invalid credentials in Authorization header")

    def _require_write(self, headers: Any) -> str:
        user, can_write = self._user_for(headers)
        if user is None:
            raise HubError(401, "You must be authenticated to write to the Hub (no token sent)")
        if not can_write:
            raise HubError(403, "Your token has read access only; write access is required")
        return user

    def _get_repo(self, repo_type: str, repo_id: str, headers: Any, write: bool = False) -> Repo:
        if write:
            self._require_write(headers)
            user = self.user
        else:
            user, _ = self._user_for(headers)
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user is None):
            raise HubError(404 if user else 401, f"Repository Not Found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    # ------------------------------------------------------------------ endpoint logic (called under _lock)
    def create_repo(self, payload: dict[str, Any], headers: Any) -> tuple[int, dict[str, Any]]:
        user = self._require_write(headers)
        name = payload.get("name")
        if not name:
            raise HubError(400, "name is required")
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{name}"
        repo_type = payload.get("type") or "model"
        if repo_type not in _TYPE_PREFIX:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        existing = self.repos.get((repo_type, repo_id))
        if existing is not None:
            return 409, {"error": "You already created this repo", "url": existing.url(self.endpoint)}
        private = bool(payload.get("private")) or payload.get("visibility") in ("private", "protected")
        repo = Repo(repo_id, repo_type, private)
        initial = repo.add_commit(None, "initial commit", "", {
            ".gitattributes": StoredFile(".gitattributes", len(GITATTRIBUTES), content=GITATTRIBUTES)})
        repo.branches["main"] = initial.sha
        self.repos[(repo_type, repo_id)] = repo
        return 200, {"url": repo.url(self.endpoint), "name": repo_id, "id": repo_id}

    def repo_info(self, repo: Repo, revision: str) -> dict[str, Any]:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        siblings = [{"rfilename": p, "size": f.size, "blobId": f.blob_id,
                     **({"lfs": {"sha256": f.lfs_sha256, "size": f.size, "pointerSize": 134}}
                        if f.lfs_sha256 else {})}
                    for p, f in sorted(commit.files.items())]
        return {"_id": repo.repo_id, "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.sha,
                "lastModified": commit.date, "createdAt": repo.history(commit)[-1].date, "private": repo.private,
                "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}

    def create_branch(self, repo: Repo, branch: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if branch in repo.branches:
            return 409, {"error": f"Reference refs/heads/{branch} already exists"}
        start = repo.resolve(payload.get("startingPoint") or "main")
        if start is None:
            raise HubError(404, "starting point not found", "RevisionNotFound")
        repo.branches[branch] = start.sha
        return 200, {}

    def preupload(self, repo: Repo, revision: str, payload: dict[str, Any]) -> dict[str, Any]:
        commit = repo.resolve(revision)
        if commit is None and not revision.startswith("refs"):
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        answers = []
        for item in payload.get("files", []):
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item.get("sample", ""))
            lfs = size >= LFS_THRESHOLD_BYTES or b"\0" in sample or path.lower().endswith(LFS_SUFFIXES)
            stored = commit.files.get(path) if commit is not None else None
            remote_oid = None
            if stored is not None:
                remote_oid = stored.lfs_sha256 if (lfs and stored.lfs_sha256) else (
                    None if lfs else _git_blob_sha1(stored.content or b"") if stored.content is not None else None)
            answers.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                            "oid": remote_oid})
        return {"files": answers, "commitOid": commit.sha if commit else None}

    def lfs_batch(self, repo: Repo, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("operation") != "upload":
            raise HubError(400, "only the upload operation is implemented")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in repo.lfs_objects:
                base = f"{self.endpoint}/__lfs__/{quote(repo.repo_type)}/{repo.repo_id}/{oid}"
                entry["actions"] = {
                    "upload": {"href": base, "header": {}},
                    "verify": {"href": f"{base}/verify", "header": {}},
                }
            objects.append(entry)
        return {"transfer": "basic", "objects": objects}

    def commit(self, repo: Repo, revision: str, body: bytes, create_pr: bool) -> dict[str, Any]:
        revision = unquote(revision)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        if create_pr:
            base = repo.resolve(revision)
            target = f"refs/pr/{repo.next_pr}"
            repo.next_pr += 1
        else:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            base, target = repo.resolve(revision), revision
        if base is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        parent_commit = header.get("parentCommit")
        if parent_commit is not None and parent_commit != base.sha:
            raise HubError(412, f"parent commit {parent_commit} is not the head of {revision} ({base.sha})")
        files = dict(base.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                content = base64.b64decode(value["content"])
                files[path] = StoredFile(path, len(content), content=content)
            elif key == "lfsFile":
                oid = value["oid"]
                if oid not in repo.lfs_objects:
                    raise HubError(422, f"LFS object {oid} of {path} was never uploaded")
                files[path] = StoredFile(path, len(repo.lfs_objects[oid]), lfs_sha256=oid)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                files = {p: f for p, f in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"unknown commit line key {key!r}")
        new = repo.add_commit(base, header.get("summary") or "", header.get("description") or "", files)
        repo.branches[target] = new.sha
        prefix = _TYPE_PREFIX[repo.repo_type]
        return {
            "success": True,
            "commitOid": new.sha,
            "commitUrl": f"{self.endpoint}/{prefix}{repo.repo_id}/commit/{new.sha}",
            "pullRequestUrl": (f"{self.endpoint}/{prefix}{repo.repo_id}/discussions/{target.rsplit('/', 1)[1]}"
                               if create_pr else None),
        }

    @staticmethod
    def _folders(files: dict[str, StoredFile]) -> set[str]:
        folders: set[str] = set()
        for path in files:
            parts = path.split("/")[:-1]
            folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return folders

    def tree(self, repo: Repo, revision: str, path: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        path = path.strip("/")
        prefix = f"{path}/" if path else ""
        folders = self._folders(commit.files)
        if path and path not in folders:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        last = commit if expand else None
        entries: list[dict[str, Any]] = []
        for folder in sorted(folders):
            if folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix):]):
                entries.append({"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest(),
                                **({"lastCommit": commit.summary()} if expand else {})})
        for file_path, stored in sorted(commit.files.items()):
            if file_path.startswith(prefix) and (recursive or "/" not in file_path[len(prefix):]):
                entries.append(stored.tree_entry(last))
        return entries

    def paths_info(self, repo: Repo, revision: str, paths: list[str], expand: bool) -> list[dict[str, Any]]:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        folders = self._folders(commit.files)
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].tree_entry(commit if expand else None))
            elif path in folders:
                out.append({"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()})
        return out


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to :class:`LocalHub`; one instance per connection (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    local_hub: LocalHub  # set by LocalHub.start

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    # ------------------------------------------------------------------ body / response helpers
    def _read_body(self, limit: int | None = None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                total += size
                if limit is not None and total >= limit:
                    break
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(length, limit))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json", head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None, head: bool = False) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

    def _drop(self) -> None:
        """Close the connection without an answer (after reading half of any request body)."""
        length = int(self.headers.get("Content-Length") or 0)
        if length or self.headers.get("Transfer-Encoding"):
            try:
                self._read_body(limit=max(length // 2, 1))
            except OSError:
                pass
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _DropConnection

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        hub = self.local_hub
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        with hub._lock:
            hub.requests.append((method, path))
        try:
            failing, status = hub._take_failure(method, path)
            if failing:
                if status is None:
                    self._drop()
                self._read_body()
                raise HubError(status, f"injected failure ({status}) by the local test Hub")
            self._route(method, path, query)
        except _DropConnection:
            return
        except HubError as err:
            self._error(err.status, err.message, err.code, head=method == "HEAD")
        except (KeyError, ValueError, json.JSONDecodeError) as err:
            self._error(400, f"bad request: {err!r}", head=method == "HEAD")

    def _route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        hub = self.local_hub
        parts = path.strip("/").split("/")
        if path == "/api/whoami-v2" and method == "GET":
            user, can_write = hub._user_for(self.headers)
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            role = "write" if can_write else "read"
            return self._json(200, {"type": "user", "name": user, "fullname": user, "orgs": [],
                                    "auth": {"type": "access_token", "accessToken": {"role": role}}})
        if path == "/api/validate-yaml" and method == "POST":
            self._read_body()
            return self._json(200, {"errors": [], "warnings": []})
        if path == "/api/repos/create" and method == "POST":
            payload = json.loads(self._read_body() or b"{}")
            with hub._lock:
                status, answer = hub.create_repo(payload, self.headers)
            if status != 200:
                return self._send(status, json.dumps(answer).encode(), {"X-Error-Message": answer["error"]})
            return self._json(status, answer)
        if parts[0] == "__lfs__":
            return self._lfs_transfer(method, parts[1:])
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in _PLURAL_TO_TYPE:
            return self._api_repo(method, _PLURAL_TO_TYPE[parts[1]], parts[2:], query)
        # LFS batch: /{prefix}{repo_id}.git/info/lfs/objects/batch
        if path.endswith(".git/info/lfs/objects/batch") and method == "POST":
            repo_type, rest = self._split_type(parts)
            repo_id = "/".join(rest[:-4]).removesuffix(".git")
            payload = json.loads(self._read_body() or b"{}")
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers, write=True)
                answer = hub.lfs_batch(repo, payload)
            return self._send(200, json.dumps(answer).encode(), content_type="application/vnd.git-lfs+json")
        if "resolve" in parts and method in ("GET", "HEAD"):
            return self._resolve(method, parts)
        raise HubError(404, f"the local test Hub does not implement {method} {path}")

    @staticmethod
    def _split_type(parts: list[str]) -> tuple[str, list[str]]:
        if parts[0] in ("datasets", "spaces"):
            return _PLURAL_TO_TYPE[parts[0]], parts[1:]
        return "model", parts

    def _api_repo(self, method: str, repo_type: str, rest: list[str], query: dict[str, list[str]]) -> None:
        hub = self.local_hub
        repo_id = "/".join(unquote(p) for p in rest[:2])
        action = rest[2] if len(rest) > 2 else None
        args = [unquote(p) for p in rest[3:]]
        flag = lambda name: (query.get(name, ["0"])[0].lower() in ("1", "true"))  # noqa: E731
        if method == "GET" and action in (None, "revision"):
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers)
                return self._json(200, hub.repo_info(repo, args[0] if args else "main"))
        if method == "GET" and action == "tree":
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers)
                entries = hub.tree(repo, args[0], "/".join(args[1:]), flag("recursive"), flag("expand"))
            return self._json(200, entries)
        if method == "GET" and action == "refs":
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers)
                refs = [{"name": n, "ref": n if n.startswith("refs/") else f"refs/heads/{n}", "targetCommit": s}
                        for n, s in repo.branches.items()]
            return self._json(200, {"branches": [r for r in refs if not r["name"].startswith("refs/pr/")],
                                    "converts": [], "tags": [],
                                    "pullRequests": [r for r in refs if r["name"].startswith("refs/pr/")]})
        if method == "GET" and action == "commits":
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers)
                head = repo.resolve(args[0] if args else "main")
                if head is None:
                    raise HubError(404, "revision not found", "RevisionNotFound")
                history = [{"id": c.sha, "title": c.title, "message": c.message, "date": c.date,
                            "authors": [{"user": hub.user}]} for c in repo.history(head)]
            return self._json(200, history)
        if method == "POST" and action == "paths-info":
            body = self._read_body()
            form = parse_qs(body.decode())
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers)
                expand = form.get("expand", ["false"])[0].lower() == "true"
                return self._json(200, hub.paths_info(repo, args[0], form.get("paths", []), expand))
        if method == "POST" and action == "preupload":
            payload = json.loads(self._read_body() or b"{}")
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers, write=True)
                return self._json(200, hub.preupload(repo, args[0], payload))
        if method == "POST" and action == "commit":
            body = self._read_body()
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers, write=True)
                return self._json(200, hub.commit(repo, args[0], body, flag("create_pr")))
        if method == "POST" and action == "branch":
            payload = json.loads(self._read_body() or b"{}")
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers, write=True)
                status, answer = hub.create_branch(repo, "/".join(args), payload)
            if status != 200:
                return self._send(status, json.dumps(answer).encode(), {"X-Error-Message": answer["error"]})
            return self._json(200, answer)
        raise HubError(404, f"the local test Hub does not implement {method} /api/{repo_type}s/{repo_id}/{action}")

    def _lfs_transfer(self, method: str, parts: list[str]) -> None:
        """PUT /__lfs__/{type}/{ns}/{name}/{oid} stores an object; POST .../{oid}/verify checks it."""
        hub = self.local_hub
        verify = parts[-1] == "verify"
        if verify:
            parts = parts[:-1]
        repo_type, repo_id, oid = parts[0], "/".join(parts[1:-1]), parts[-1]
        if method == "PUT" and not verify:
            data = self._read_body()
            if hashlib.sha256(data).hexdigest() != oid:
                raise HubError(400, f"uploaded content does not match its sha256 {oid} ({len(data)} bytes received)")
            # Like S3 presigned URLs, the upload URL itself is the credential: no token is sent.
            with hub._lock:
                repo = hub.repos.get((repo_type, repo_id))
                if repo is None:
                    raise HubError(404, f"Repository Not Found: {repo_type} {repo_id}", "RepoNotFound")
                repo.lfs_objects[oid] = data
            return self._send(200, b"", {"ETag": f'"{oid}"'})
        if method == "POST" and verify:
            payload = json.loads(self._read_body() or b"{}")
            with hub._lock:
                repo = hub._get_repo(repo_type, repo_id, self.headers, write=True)
                stored = repo.lfs_objects.get(oid)
            if stored is None or len(stored) != int(payload.get("size", -1)) or payload.get("oid") != oid:
                raise HubError(422, f"LFS object {oid} is missing or has the wrong size")
            return self._json(200, {"success": True})
        raise HubError(405, f"{method} not allowed on LFS transfer URLs")

    def _resolve(self, method: str, parts: list[str]) -> None:
        hub = self.local_hub
        repo_type, rest = self._split_type(parts)
        index = rest.index("resolve")
        repo_id = "/".join(rest[:index])
        revision = unquote(rest[index + 1])
        file_path = unquote("/".join(rest[index + 2:]))
        head = method == "HEAD"
        with hub._lock:
            repo = hub._get_repo(repo_type, repo_id, self.headers)
            commit = repo.resolve(revision)
            if commit is None:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            stored = commit.files.get(file_path)
            if stored is None:
                raise HubError(404, f"Entry not found: {file_path}", "EntryNotFound")
            data = repo.content(stored)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{stored.etag}"', "Accept-Ranges": "bytes"}
        if stored.lfs_sha256 is not None:
            headers["X-Linked-Etag"] = f'"{stored.lfs_sha256}"'
            headers["X-Linked-Size"] = str(stored.size)
        status = 200
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes=") and not head:
            start_text, _, end_text = range_header[len("bytes="):].partition("-")
            start = int(start_text or 0)
            end = int(end_text) if end_text else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        if head:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return None
        return self._send(status, data, headers, content_type="application/octet-stream")
