"""A stand-in for the Hugging Face Hub HTTP endpoints this project uses, served on 127.0.0.1 from a
thread, so that huggingface_hub's and transformers' own clients can be tested end to end without a
network: pushes (create a repo, commit files) and downloads (model info, tree, resolve).

Implemented (what huggingface_hub 2.4 and transformers 5.24 ask, see /work/shared/NOTES.md):
  GET  /api/whoami-v2
  POST /api/repos/create
  POST /api/validate-yaml
  GET  /api/agent-harnesses                          (asked on every run; an empty registry)
  GET  /api/models/{repo}[/revision/{rev}]           siblings; sizes, blob ids and LFS info with ?blobs=true
  GET  /api/models/{repo}/auth-check                 200, or GatedRepo / RepoNotFound
  GET  /api/models/{repo}/tree/{rev}[/{path}]        one level, or all with ?recursive=true
  HEAD|GET /{repo}/resolve/{rev}/{path}              X-Repo-Commit, quoted ETag (sha256 for LFS-type
                                                     files, git blob sha1 for others), Content-Length,
                                                     no xet headers; a missing file is EntryNotFound
  POST /api/models/{repo}/preupload/{rev}            every file "regular", i.e. inline
  POST /api/models/{repo}/commit/{rev}               NDJSON, files base64-encoded inline
Anything else answers 404 and is recorded in `unexpected`.

Access, as the Hub does it: a private repo is a RepoNotFound (401) to anyone but its owner, the
owner's organizations and its `readers`; a gated repo's info and file list are public, but its files
(and auth-check) answer GatedRepo (401 without a token, 403 with one) to anyone not in `readers`.

Accounts are set up by the test: `stub.add_user(token, name, orgs, role)`; empty repos by
`stub.add_repo(repo_id, owner)`, repos with files by `stub.add_model(...)`, and the project's three
model repos by `serve_model_repos(stub)`. A file can be real bytes (`files`) or metadata only
(`sizes`: listed with that size, never served: asking for its bytes is recorded in `unexpected`),
so a repo of several GB costs nothing. Everything a client sends is kept in `requests`
((method, path) pairs) and `bodies`, every file served in `downloads` ((repo, path) pairs) and every
committed file in `files[repo_id][path]` (bytes), so tests can inspect all of it.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO = r"(?P<repo>[^/]+/[^/]+)"
# Files the Hub keeps in LFS by default (.gitattributes of a new repo): their ETag is the sha256.
LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".model", ".msgpack", ".onnx", ".pt", ".pth", ".gguf", ".png")
POINTER_SIZE = 134  # bytes of a git-lfs pointer file, what the Hub reports as pointerSize


@dataclass
class Account:
    name: str
    orgs: list[str]
    role: str  # "write", "read" or "fineGrained" (treated here as without write access)

    def can_write(self, namespace: str) -> bool:
        return self.role == "write" and namespace in [self.name, *self.orgs]


@dataclass
class HubState:
    accounts: dict[str, Account] = field(default_factory=dict)      # token -> account
    repos: dict[str, dict] = field(default_factory=dict)            # repo id -> {"owner", "private", "gated", "readers", "sha"}
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # repo id -> {path: size} of metadata-only files
    commits: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)   # (method, path)
    bodies: list[bytes] = field(default_factory=list)
    downloads: list[tuple[str, str]] = field(default_factory=list)  # (repo, path) of every file body served
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def repo_sha(repo_id: str) -> str:
    """A stable 40-hex commit id for a repo that has not been committed to through the stub."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


class Handler(BaseHTTPRequestHandler):
    state: HubState
    base_url: str

    def log_message(self, *args):  # keep test output clean
        pass

    # -- plumbing ------------------------------------------------------------------------------
    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, raw: bytes, headers: dict):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def reply(self, status: int, payload, headers: dict | None = None):
        self.send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def error(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        self.reply(status, {"error": message}, {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}),
                                                **(headers or {})})

    def account(self) -> Account | None:
        auth = self.headers.get("Authorization", "")
        return self.state.accounts.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

    def route(self, method: str):
        url = urlsplit(self.path)
        path, self.query = unquote(url.path), parse_qs(url.query)
        with self.state.lock:
            self.state.requests.append((method, path))
        data = self.body() if method == "POST" else b""
        with self.state.lock:
            self.state.bodies.append(data)
        read = ("GET", "HEAD")
        routes = {
            (("GET",), r"/api/whoami-v2"): self.whoami,
            (("POST",), r"/api/repos/create"): self.create,
            (("POST",), r"/api/validate-yaml"): self.validate_yaml,
            (("GET",), r"/api/agent-harnesses"): self.agent_harnesses,
            (("GET",), rf"/api/models/{REPO}/auth-check"): self.auth_check,
            (("GET",), rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(/(?P<folder>.+?))?/?"): self.tree,
            (("GET",), rf"/api/models/{REPO}(/revision/(?P<rev>[^/]+))?"): self.repo_info,
            (("POST",), rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)"): self.preupload,
            (("POST",), rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)"): self.commit,
            (read, rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)"): self.resolve,
        }
        for (verbs, pattern), handler in routes.items():
            match = re.fullmatch(pattern, path)
            if method in verbs and match:
                return handler(data, **{k: v for k, v in match.groupdict().items() if v is not None})
        with self.state.lock:
            self.state.unexpected.append((method, path))
        self.error(404, f"stub does not implement {method} {path}")

    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("HEAD")

    def do_POST(self):
        self.route("POST")

    # -- access --------------------------------------------------------------------------------
    def may_see(self, repo: str) -> bool:
        """Private repos exist only for their owner, the owner's organizations and their readers."""
        meta = self.state.repos[repo]
        if not meta["private"]:
            return True
        account = self.account()
        return account is not None and (account.name in meta["readers"] or account.name == meta["owner"]
                                        or repo.split("/")[0] in [account.name, *account.orgs])

    def may_read(self, repo: str) -> bool:
        """A gated repo's files are for its readers (and owner) only."""
        meta = self.state.repos[repo]
        account = self.account()
        return not meta["gated"] or account is not None and (account.name in meta["readers"]
                                                               or account.name == meta["owner"])

    def refuse_unseen(self, repo: str, headers: dict | None = None) -> bool:
        """Answer RepoNotFound (True) when the repo does not exist or is private to someone else."""
        if repo in self.state.repos and self.may_see(repo):
            return False
        # The Hub answers 401 for a private repo and for a missing one alike, so nobody learns which.
        self.error(401, "Repository not found", "RepoNotFound", headers)
        return True

    def refuse_gated(self, repo: str, headers: dict | None = None) -> bool:
        if self.may_read(repo):
            return False
        status = 401 if self.account() is None else 403
        self.error(status, f"Access to model {repo} is restricted. You must have access to it and be "
                           "authenticated to access it. Please log in.", "GatedRepo", headers)
        return True

    def known_revision(self, repo: str, rev: str) -> bool:
        return rev in ("main", self.state.repos[repo]["sha"])

    # -- repo contents -------------------------------------------------------------------------
    def listing(self, repo: str) -> dict[str, dict]:
        """path -> {"size", "blobId", "lfs"?} for every file of a repo, real or metadata-only."""
        entries = {}
        for path, data in self.state.files.get(repo, {}).items():
            entries[path] = self.entry(repo, path, len(data), hashlib.sha256(data).hexdigest(), git_blob_sha1(data))
        for path, size in self.state.sizes.get(repo, {}).items():
            fake = hashlib.sha256(f"{repo}/{path}".encode()).hexdigest()
            entries[path] = self.entry(repo, path, size, fake, fake[:40])
        return dict(sorted(entries.items()))

    @staticmethod
    def entry(repo: str, path: str, size: int, sha256: str, blob_id: str) -> dict:
        item = {"size": size, "blobId": blob_id, "sha256": sha256}
        if is_lfs(path):
            item["lfs"] = {"size": size, "sha256": sha256, "pointerSize": POINTER_SIZE}
        return item

    def etag(self, item: dict) -> str:
        return f'"{item["sha256"] if "lfs" in item else item["blobId"]}"'

    # -- endpoints -----------------------------------------------------------------------------
    def whoami(self, data):
        account = self.account()
        if account is None:
            return self.error(401, "Invalid credentials in Authorization header")
        self.reply(200, {"type": "user", "name": account.name, "orgs": [{"name": o} for o in account.orgs],
                         "auth": {"type": "access_token",
                                  "accessToken": {"displayName": "test token", "role": account.role}}})

    def create(self, data):
        account = self.account()
        if account is None:
            return self.error(401, "Invalid credentials in Authorization header")
        request = json.loads(data)
        repo_id = f"{request.get('organization') or account.name}/{request['name']}"
        if not account.can_write(repo_id.split("/")[0]):
            return self.error(403, f"You don't have the rights to create a model under the namespace "
                                   f"\"{repo_id.split('/')[0]}\"")
        if repo_id in self.state.repos:   # the Hub names the existing repo's URL in a 409
            message = "You already created this model repo"
            return self.reply(409, {"error": message, "url": f"{self.base_url}/{repo_id}"},
                              {"X-Error-Message": message})
        self.state.repos[repo_id] = new_repo(repo_id, account.name, private=request.get("visibility") == "private")
        self.reply(200, {"url": f"{self.base_url}/{repo_id}", "name": repo_id})

    def agent_harnesses(self, data):
        self.reply(200, {"standardEnvVars": [], "harnesses": {}})

    def repo_info(self, data, repo, rev="main"):
        if self.refuse_unseen(repo):
            return
        if not self.known_revision(repo, rev):
            return self.error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        meta, blobs = self.state.repos[repo], "blobs" in self.query
        siblings = [{"rfilename": path, **({"size": item["size"], "blobId": item["blobId"],
                                            **({"lfs": item["lfs"]} if "lfs" in item else {})} if blobs else {})}
                    for path, item in self.listing(repo).items()]
        self.reply(200, {"_id": meta["sha"][:24], "id": repo, "modelId": repo, "author": repo.split("/")[0],
                         "sha": meta["sha"], "private": meta["private"], "gated": meta["gated"], "disabled": False,
                         "library_name": "transformers", "tags": [], "siblings": siblings})

    def auth_check(self, data, repo):
        if self.refuse_unseen(repo) or self.refuse_gated(repo):
            return
        self.reply(200, {})

    def tree(self, data, repo, rev, folder=""):
        if self.refuse_unseen(repo):
            return
        if not self.known_revision(repo, rev):
            return self.error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        files = {p: item for p, item in self.listing(repo).items() if p.startswith(prefix)}
        if prefix and not files:
            return self.error(404, f"{folder} does not exist on \"{rev}\"", "EntryNotFound")
        entries, folders = [], set()
        for path, item in files.items():
            rest = path[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(prefix + "/".join(parts[:i + 1]) for i in range(len(parts)))
            entries.append({"type": "file", "path": path, "size": item["size"], "oid": item["blobId"],
                            **({"lfs": {"oid": item["sha256"], "size": item["size"], "pointerSize": POINTER_SIZE}}
                               if "lfs" in item else {})})
        entries += [{"type": "directory", "path": f, "size": 0, "oid": hashlib.sha1(f.encode()).hexdigest()}
                    for f in sorted(folders)]
        self.reply(200, sorted(entries, key=lambda e: e["path"]))

    def resolve(self, data, repo, rev, file):
        if self.refuse_unseen(repo):
            return
        commit = {"X-Repo-Commit": self.state.repos[repo]["sha"]}
        if self.refuse_gated(repo, commit):
            return
        if not self.known_revision(repo, rev):
            return self.error(404, f"Invalid rev id: {rev}", "RevisionNotFound", commit)
        item = self.listing(repo).get(file)
        if item is None:
            return self.error(404, f"Entry not found: {file}", "EntryNotFound", commit)
        if file not in self.state.files.get(repo, {}):   # metadata only: its bytes were never meant to be asked for
            with self.state.lock:
                self.state.unexpected.append((self.command, self.path))
            return self.error(501, f"the stub holds no bytes for {repo}/{file} (size {item['size']})")
        content = self.state.files[repo][file]
        start = self.range_start()
        headers = {**commit, "ETag": self.etag(item), "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        if self.command == "GET":
            with self.state.lock:
                self.state.downloads.append((repo, file))
        self.send(206 if start else 200, content[start:], headers)

    def range_start(self) -> int:
        """Where a resumed download starts ("Range: bytes=N-"), 0 for a whole file."""
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "").strip())
        return int(match.group(1)) if match else 0

    def validate_yaml(self, data):
        import yaml
        content = json.loads(data)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError as err:
            return self.reply(400, {"errors": [{"message": str(err)}]})
        if not isinstance(metadata, dict):
            return self.reply(400, {"errors": [{"message": "no YAML metadata block"}]})
        self.reply(200, {"errors": [], "warnings": []})

    def writable(self, repo) -> bool:
        account = self.account()
        if account is None:
            self.error(401, "Invalid credentials in Authorization header")
            return False
        if repo not in self.state.repos:
            self.error(404, "Repository not found", "RepoNotFound")
            return False
        if not account.can_write(repo.split("/")[0]):
            self.error(403, "You don't have write access to this repo")
            return False
        return True

    def preupload(self, data, repo, rev):
        if not self.writable(repo):
            return
        files = json.loads(data)["files"]
        self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                   for f in files]})

    def commit(self, data, repo, rev):
        if not self.writable(repo):
            return
        lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        stored = self.state.files.setdefault(repo, {})
        for item in lines:
            if item["key"] == "file":
                value = item["value"]
                content = value["content"]
                stored[value["path"]] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
        self.state.commits.append({"repo": repo, "summary": header.get("summary"),
                                   "paths": [i["value"]["path"] for i in lines if i["key"] == "file"]})
        oid = f"{len(self.state.commits):040x}"
        self.state.repos[repo]["sha"] = oid
        self.reply(200, {"commitUrl": f"{self.base_url}/{repo}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None, "success": True})


def new_repo(repo_id: str, owner: str, private: bool = False, gated: bool | str = False, readers=()) -> dict:
    return {"owner": owner, "private": private, "gated": gated, "readers": set(readers), "sha": repo_sha(repo_id)}


class HubStub:
    """`with HubStub() as hub:` serves on http://127.0.0.1:<free port> until the block ends."""

    def __init__(self):
        self.state = HubState()
        handler = type("StubHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        handler.base_url = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_user(self, token: str, name: str, orgs=(), role: str = "write"):
        self.state.accounts[token] = Account(name, list(orgs), role)

    def add_repo(self, repo_id: str, owner: str):
        self.state.repos[repo_id] = new_repo(repo_id, owner)

    def add_model(self, repo_id: str, files: dict[str, bytes], sizes: dict[str, int] | None = None,
                  private: bool = False, gated: bool | str = False, readers=()):
        """A model repo: `files` served byte for byte, `sizes` listed with that size and never served.
        `gated` is False, "auto" or "manual" (as the Hub's API says); `readers` are the account names
        granted access to a gated or private repo."""
        self.state.repos[repo_id] = new_repo(repo_id, repo_id.split("/")[0], private, gated, readers)
        self.state.files[repo_id] = dict(files)
        self.state.sizes[repo_id] = dict(sizes or {})

    @property
    def files(self):
        return self.state.files

    def downloads(self, repo_id: str | None = None) -> list[str]:
        """Paths of the files whose bytes were served (GET), in order, for one repo or all."""
        with self.state.lock:
            return [path for repo, path in self.state.downloads if repo_id in (None, repo)]

    def resolves(self, repo_id: str) -> list[tuple[str, str]]:
        """Every HEAD or GET of a file of `repo_id` (answered or refused)."""
        with self.state.lock:
            return [(m, p) for m, p in self.state.requests if p.startswith(f"/{repo_id}/resolve/")]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# -------------------------------------------------------------------------------------------------
# The model repos the project's tests download from: built from the project's own embedded model.

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "assets" / "tiny-japanese-gpt2"
RINNA = "rinna/japanese-gpt2-xsmall"
HUGE = "big-lab/japanese-gpt-70b"
GATED = "gated-lab/japanese-gpt2-gated"
GB = 10**9


def rinna_like_files() -> tuple[dict[str, bytes], dict[str, int]]:
    """rinna/japanese-gpt2-xsmall's file list (NOTES.md) with the embedded model's bytes: config,
    safetensors weights and spiece.model (unk=0, bos=1, eos=2, pad=3, like rinna's), rinna's kind of
    tokenizer_config.json (T5Tokenizer, do_lower_case) and no tokenizer.json. The other weight
    formats and the picture are metadata only, at rinna's sizes: loading must never ask for them."""
    tokenizer_config = {"tokenizer_class": "T5Tokenizer", "do_lower_case": True, "extra_ids": 0,
                        "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                        "additional_special_tokens": []}
    special = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    files = {name: (TINY / name).read_bytes() for name in ("config.json", "model.safetensors", "spiece.model")}
    files["tokenizer_config.json"] = json.dumps(tokenizer_config).encode()
    files["special_tokens_map.json"] = json.dumps(special).encode()
    files["README.md"] = b"---\nlanguage: ja\nlicense: mit\n---\n# a stand-in for rinna/japanese-gpt2-xsmall\n"
    sizes = {"pytorch_model.bin": 151_404_183, "tf_model.h5": 151_503_864, "rinna.png": 35_460}
    return files, sizes


def huge_sizes(shards: int = 15, shard_bytes: int = 9_900_000_000) -> dict[str, int]:
    """A sharded safetensors model of about 150 GB (a 70B model in bf16), plus its pickle copy."""
    sizes = {f"model-{i:05d}-of-{shards:05d}.safetensors": shard_bytes for i in range(1, shards + 1)}
    sizes |= {f"pytorch_model-{i:05d}-of-{shards:05d}.bin": shard_bytes for i in range(1, shards + 1)}
    return sizes


def serve_model_repos(stub: HubStub, gated_readers=()) -> HubStub:
    """RINNA (the rinna-like model, public), HUGE (several GB of weights, metadata only, with real
    small config, index and tokenizer files) and GATED (the rinna-like model behind a manual gate,
    readable by `gated_readers`)."""
    files, sizes = rinna_like_files()
    stub.add_model(RINNA, files, sizes)
    index = {"metadata": {"total_size": 140 * GB},
             "weight_map": {"lm_head.weight": "model-00015-of-00015.safetensors"}}
    small = {k: v for k, v in files.items() if k not in ("model.safetensors",)}
    stub.add_model(HUGE, {**small, "model.safetensors.index.json": json.dumps(index).encode(),
                          "pytorch_model.bin.index.json": json.dumps(index).encode()}, huge_sizes())
    stub.add_model(GATED, files, sizes, gated="manual", readers=gated_readers)
    return stub
