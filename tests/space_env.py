"""Starting `python app.py` as a Hugging Face Space starts it, for tests: the variables a Space sets
(SYSTEM, SPACE_ID, SPACE_HOST, the OAUTH_* of `hf_oauth: true`, HF_TOKEN as the owner's secret),
pointed at loopback stand-ins (tests/hub_stub.py for the Hub, OpenIdProvider for the login page),
and the signed session cookie Gradio's login leaves behind."""
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OAUTH_SECRET = "test-oauth-client-secret"
OWNER_TOKEN, VISITOR_TOKEN = "space-owner-token", "visitor-oauth-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenIdProvider:
    """Serves the one document authlib reads before sending a visitor to log in."""

    def __init__(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = json.dumps({"issuer": provider.url, "authorization_endpoint": f"{provider.url}/oauth/authorize",
                                   "token_endpoint": f"{provider.url}/oauth/token",
                                   "userinfo_endpoint": f"{provider.url}/oauth/userinfo",
                                   "jwks_uri": f"{provider.url}/oauth/jwks"}).encode()
                self.send_response(200 if self.path == "/.well-known/openid-configuration" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def space_env(port: int, home: Path, hub_url: str, openid_url: str) -> dict:
    """What a Space with `hf_oauth: true` and an HF_TOKEN secret sets, pointed at loopback stand-ins."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PORT")}
    return env | {
        "SYSTEM": "spaces", "SPACE_ID": "someone/japanese-gpt-studio", "SPACE_AUTHOR_NAME": "someone",
        "SPACE_REPO_NAME": "japanese-gpt-studio", "SPACE_HOST": "someone-japanese-gpt-studio.hf.space",
        "OAUTH_CLIENT_ID": "test-oauth-client", "OAUTH_CLIENT_SECRET": OAUTH_SECRET,
        "OAUTH_SCOPES": "openid profile manage-repos write-repos", "OPENID_PROVIDER_URL": openid_url,
        "HF_TOKEN": OWNER_TOKEN, "HF_ENDPOINT": hub_url, "HF_HOME": str(home / "hf-home"),
        "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
        "STUDIO_HOME": str(home / "studio"),
    }


def start_app(env: dict, log: Path, args: list[str] | None = None) -> subprocess.Popen:
    """`python app.py` (or `python ARGS…`, a launcher of it) with its output in a file: a pipe nobody
    reads would stop the app once full, and the file is the evidence when a test fails (`log_tail`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen([sys.executable, *(args or ["app.py"])], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, text=True)
    server.log = log
    return server


def log_tail(server: subprocess.Popen, lines: int = 60) -> str:
    text = server.log.read_text(encoding="utf-8", errors="replace") if server.log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 180):
    import httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the app exited:\n{log_tail(server)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the app did not start serving")


def signed_in_cookie(username: str, token: str) -> str:
    """The session cookie Gradio's OAuth callback leaves after a login: Starlette's signed session,
    keyed by the OAuth client secret, holding the visitor's token and profile."""
    from itsdangerous import TimestampSigner
    session = {"oauth_info": {
        "access_token": token, "token_type": "bearer", "scope": "openid profile write-repos",
        "expires_at": int(time.time()) + 3600,
        "userinfo": {"name": username.title(), "preferred_username": username,
                     "profile": f"https://huggingface.co/{username}", "picture": ""}}}
    key = hashlib.sha256((OAUTH_SECRET + "-v4").encode()).hexdigest()
    return TimestampSigner(key).sign(base64.b64encode(json.dumps(session).encode())).decode()
