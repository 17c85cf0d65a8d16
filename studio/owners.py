"""Who a request acts for, and which runs, uploads and zips are theirs.

On a public Space (`private=True`) every upload, run, zip and queued job belongs to an owner:
  - the signed-in Hugging Face user (gr.OAuthProfile), when there is one;
  - else a session key: the browser's (a random key the page keeps in gr.BrowserState, so a
    reload keeps your runs), or one an API caller got from /new_session and passes as `session`;
  - else, for an API caller without a key, its gradio_client session (request.session_hash):
    each Client sees only what it made itself.
A signed-in visitor also keeps what their browser made before they signed in. Anyone naming a run
that is not theirs is told exactly what they would be told for a run that does not exist.

Off a Space (`private=False`) there is one user, who owns everything under the work folder, as
the CLI does: runs/, uploads/ and exports/ are used directly.
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from finetune.models import ModelPolicy
from finetune.workspace import no_such_run, owner_folder, server_secret

SESSION_KEY = re.compile(r"^[A-Za-z0-9_-]{32,128}$")  # what new_session_key makes: 256 random bits


def new_session_key() -> str:
    """A fresh, unguessable session key (whoever holds it owns what was made with it)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Owner:
    """The folders (under runs/, uploads/, exports/) whose contents a caller owns. New files go to
    the first; "" stands for the work folder's own runs/, uploads/, exports/ (the local user)."""
    folders: tuple[str, ...]
    signed_in: str = ""          # the Hugging Face user name, when signed in

    @property
    def local(self) -> bool:
        return self.folders == ("",)


LOCAL = Owner(("",))
NOBODY = Owner(())   # owns nothing: what a page shows before it knows its visitor


class Owners:
    """Resolves callers to owners and checks what they name against what they own."""

    def __init__(self, work: str | Path, policy: ModelPolicy, private: bool):
        self.work = Path(work)
        self.policy = policy
        self.private = private
        self._secret: bytes | None = None

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = server_secret(self.work)
        return self._secret

    # -- who ---------------------------------------------------------------------------------------
    def owner(self, session: str | None = None, session_hash: str | None = None, user: str | None = None) -> Owner:
        """The owner of a request: `user` (signed in), else `session` (a key), else `session_hash`
        (the gradio session of an API client). ValueError for a malformed key."""
        if not self.private:
            return LOCAL
        folders = []
        if user:
            folders.append(owner_folder(self.secret, "user:" + user, signed_in=True))
        if session:
            if not SESSION_KEY.match(session):
                raise ValueError("the session key is not valid: use one that /new_session returned, or none")
            folders.append(owner_folder(self.secret, "key:" + session, signed_in=False))
        elif session_hash and not user:
            folders.append(owner_folder(self.secret, "gradio-session:" + session_hash, signed_in=False))
        if not folders:
            raise ValueError("no session: call /new_session first and pass its key as `session`")
        return Owner(tuple(folders), signed_in=user or "")

    # -- where ---------------------------------------------------------------------------------
    def folder(self, kind: str, owner: Owner, which: str | None = None) -> Path:
        """work/<kind>/<owner folder> (work/<kind> for the local user)."""
        name = owner.folders[0] if which is None else which
        return self.work / kind / name if name else self.work / kind

    def runs_dirs(self, owner: Owner) -> list[Path]:
        return [self.folder("runs", owner, name) for name in owner.folders]

    def uploads(self, owner: Owner) -> Path:
        return self.folder("uploads", owner)

    def exports(self, owner: Owner) -> Path:
        return self.folder("exports", owner)

    # -- what ------------------------------------------------------------------------------------
    def run(self, owner: Owner, name: str) -> Path:
        """The owner's run folder `name` (its path, or its folder name): a folder right inside one of
        their runs folders. NoSuchRun otherwise, with the same message whether it never existed,
        was deleted or belongs to someone else."""
        name = (name or "").strip()
        if name:
            homes = [d.resolve() for d in self.runs_dirs(owner)]
            for path in [Path(name)] if ("/" in name or os.sep in name) else [d / name for d in homes]:
                if path.is_dir() and path.resolve().parent in homes:
                    return path
        raise no_such_run(name)

    def model(self, owner: Owner, name: str) -> str:
        """`name` when the owner may open it as a model: a Hub id, the embedded model, a folder the
        policy offers everyone (STUDIO_MODEL_ROOTS), or a run of their own. A run of anyone else is
        NoSuchRun, as is a missing one; any other place is refused by the policy. The local user
        may open any folder the policy allows, as before."""
        name = (name or "").strip()
        if not owner.local and name and self.policy.looks_like_path(name) and self.inside_runs(name):
            name = str(self.run(owner, name))
        self.policy.check(name)
        return name

    def inside_runs(self, name: str) -> bool:
        runs = os.path.realpath(self.work / "runs")
        real = os.path.realpath(os.path.expanduser(name))
        return real == runs or real.startswith(runs + os.sep)
