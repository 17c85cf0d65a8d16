"""README.md's YAML front matter is the Space's configuration: check it with huggingface_hub's own
parser, so that what the Hub reads is what the project means (Gradio version = the pinned one, OAuth
scopes that allow pushing models, the app file, the default model)."""
import re

import pytest
from huggingface_hub import RepoCard, metadata_load

from conftest import ROOT

README = ROOT / "README.md"
# Hardware names the Hub accepts for suggested_hardware (Spaces documentation).
SPACE_HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "a10g-small", "a10g-large",
                  "a10g-largex2", "a10g-largex4", "a100-large", "l40sx1", "l40sx4", "l40sx8", "h100", "zero-a10g"}


@pytest.fixture(scope="module")
def metadata() -> dict:
    data = metadata_load(README)
    assert data, "README.md has no YAML front matter"
    return data


def pinned(package: str) -> str:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(package)}(\[[\w,]+\])?==([^\s#]+)", text, re.M | re.I)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(2)


def test_the_hub_parser_reads_the_same_metadata(metadata):
    assert RepoCard.load(README).data.to_dict() == metadata


def test_gradio_sdk_is_the_pinned_version(metadata):
    assert metadata["sdk"] == "gradio"
    assert str(metadata["sdk_version"]) == pinned("gradio")


def test_app_file_and_python_version(metadata):
    assert metadata["app_file"] == "app.py" and (ROOT / "app.py").is_file()
    # Quoted on purpose: unquoted YAML reads 3.10 as the number 3.1.
    assert isinstance(metadata["python_version"], str)
    assert re.fullmatch(r"3\.\d+(\.\d+)?", metadata["python_version"]), metadata["python_version"]


def test_oauth_can_create_and_write_model_repos(metadata):
    assert metadata["hf_oauth"] is True
    assert {"manage-repos", "write-repos"} <= set(metadata["hf_oauth_scopes"])


def test_hardware_license_tags_and_models(metadata):
    assert metadata["suggested_hardware"] in SPACE_HARDWARE
    assert isinstance(metadata["license"], str) and metadata["license"]
    assert isinstance(metadata["tags"], list) and metadata["tags"]
    assert "rinna/japanese-gpt2-xsmall" in metadata["models"]


def test_oauth_extra_and_its_packages_are_pinned():
    """Without them `python app.py` on a Space stops: "Cannot initialize OAuth … pip install gradio[oauth]"."""
    import importlib.metadata
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^gradio\[oauth\]==", text, re.M)
    extras = [r.split(";")[0].strip() for r in importlib.metadata.requires("gradio") if "extra == 'oauth'" in r]
    assert extras and all(pinned(name) == importlib.metadata.version(name) for name in extras)
