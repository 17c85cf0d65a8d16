"""Which model folders the studio opens: its own runs and the embedded model, never the visitors'
uploads beside the runs, even when STUDIO_MODEL_ROOTS holds a folder that contains them (the suite
sets it to the temporary folder, where the studio's work folder lives too)."""
import os
import shutil
import tempfile

import pytest

# As the rest of the suite sets them before the studio is imported (tests/test_app.py).
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-test-"))
os.environ.setdefault("STUDIO_MODEL_ROOTS", tempfile.gettempdir())  # test folders (rinna-like) live there

from finetune.errors import ModelNotAvailable  # noqa: E402


def model_folder(tiny_model, folder):
    """A loadable model folder (the embedded model's files) at `folder`."""
    shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    return folder


def test_the_studio_refuses_a_model_folder_among_its_uploads(tiny_model):
    from studio import shared as app  # the studio's shared objects: WORK, POLICY, MODELS
    assert any(os.path.realpath(app.WORK).startswith(os.path.realpath(root) + os.sep)
               for root in os.environ["STUDIO_MODEL_ROOTS"].split(os.pathsep))  # the case that matters
    upload = model_folder(tiny_model, app.WORK / "uploads" / "x")
    with pytest.raises(ModelNotAvailable, match="uploads"):
        app.POLICY.check(str(upload))
    with pytest.raises(ModelNotAvailable, match="uploads"):
        app.MODELS.model(str(upload))  # the cache the playground loads through
    app.POLICY.check(str(app.WORK / "runs" / "run-1"))  # the studio's own runs stay open
    app.POLICY.check(tiny_model)


def test_uploads_stay_closed_by_every_path_that_leads_there(tiny_model, tmp_path):
    """The engine's side of the rule: a symlink from the runs into the uploads, a `..` walk, or the
    uploads folder itself, with an extra root that contains the whole work folder."""
    from finetune.models import studio_policy
    work = tmp_path / "studio"
    policy = studio_policy(work, os.pathsep.join([str(tmp_path), ""]))
    upload = model_folder(tiny_model, work / "uploads" / "x")
    (work / "runs").mkdir()
    (work / "runs" / "link").symlink_to(upload, target_is_directory=True)
    for name in (upload, work / "uploads", work / "runs" / "link", f"{work}/runs/../uploads/x", f"{upload}/"):
        with pytest.raises(ModelNotAvailable, match="uploads"):
            policy.check(str(name))
    beside = model_folder(tiny_model, tmp_path / "my-model")  # what the extra root is for
    policy.check(str(beside))
    policy.check(str(work / "runs" / "run-1"))
    with pytest.raises(ModelNotAvailable, match="app's own folders"):
        studio_policy(work).check(str(beside))  # without the extra root, only the studio's own folders
