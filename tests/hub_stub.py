"""A stand-in for the few Hugging Face Hub HTTP endpoints a push uses, served on 127.0.0.1 from a
thread, so that huggingface_hub's own client can be tested end to end without a network.

Implemented: GET /api/whoami-v2, POST /api/repos/create, GET /api/models/{repo}[/revision/{rev}],
POST /api/validate-yaml, POST /api/models/{repo}/preupload/{rev} (every file "regular", i.e.
inline) and POST /api/models/{repo}/commit/{rev} (NDJSON, files base64-encoded inline). Anything
else answers 404 and is recorded in `unexpected`.

Accounts are set up by the test: `stub.add_user(token, name, orgs, role)`; repos by
`stub.add_repo(repo_id, owner)`. Everything a client sends is kept in `bodies` (raw request bodies)
and every committed file in `files[repo_id][path]` (bytes), so tests can inspect all of it.
"""
from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = r"(?P<repo>[^/]+/[^/]+)"


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
    repos: dict[str, dict] = field(default_factory=dict)            # repo id -> {"owner", "private"}
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)   # (method, path)
    bodies: list[bytes] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)


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

    def reply(self, status: int, payload, headers: dict | None = None):
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def error(self, status: int, message: str, code: str | None = None):
        self.reply(status, {"error": message}, {"X-Error-Message": message, **({"X-Error-Code": code} if code else {})})

    def account(self) -> Account | None:
        auth = self.headers.get("Authorization", "")
        return self.state.accounts.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

    def route(self, method: str):
        path = self.path.split("?")[0]
        self.state.requests.append((method, path))
        data = self.body() if method == "POST" else b""
        self.state.bodies.append(data)
        routes = {
            ("GET", r"/api/whoami-v2"): self.whoami,
            ("POST", r"/api/repos/create"): self.create,
            ("POST", r"/api/validate-yaml"): self.validate_yaml,
            ("GET", rf"/api/models/{REPO}(/revision/(?P<rev>[^/]+))?"): self.repo_info,
            ("POST", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)"): self.preupload,
            ("POST", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)"): self.commit,
        }
        for (verb, pattern), handler in routes.items():
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return handler(data, **{k: v for k, v in match.groupdict().items() if k == "repo"})
        self.state.unexpected.append((method, path))
        self.error(404, f"stub does not implement {method} {path}")

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

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
        self.state.repos[repo_id] = {"owner": account.name, "private": request.get("visibility") == "private"}
        self.reply(200, {"url": f"{self.base_url}/{repo_id}", "name": repo_id})

    def repo_info(self, data, repo):
        if repo not in self.state.repos:
            return self.error(404, "Repository not found", "RepoNotFound")
        self.reply(200, {"id": repo, "private": self.state.repos[repo]["private"], "sha": "0" * 40,
                         "siblings": [{"rfilename": p} for p in self.state.files.get(repo, {})]})

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

    def preupload(self, data, repo):
        if not self.writable(repo):
            return
        files = json.loads(data)["files"]
        self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                   for f in files]})

    def commit(self, data, repo):
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
        self.reply(200, {"commitUrl": f"{self.base_url}/{repo}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None, "success": True})


class HubStub:
    """`with HubStub() as hub:` serves on http://127.0.0.1:<free port> until the block ends."""

    def __init__(self):
        self.state = HubState()
        handler = type("StubHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        handler.base_url = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_user(self, token: str, name: str, orgs=(), role: str = "write"):
        self.state.accounts[token] = Account(name, list(orgs), role)

    def add_repo(self, repo_id: str, owner: str):
        self.state.repos[repo_id] = {"owner": owner, "private": False}

    @property
    def files(self):
        return self.state.files

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
