"""The command line: JSON output, identical generations for one seed, exit code 2 on bad input."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_tokenize_json(tiny_model):
    result = cli("tokenize", "--model", tiny_model, "--json", "これはペンです。これはリンゴです。")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["count"] == len(data["ids"]) == len(data["tokens"]) > 0
    assert data["parity"] == "ok" and data["characters"] == 17


def test_train_then_generate_twice_identical(tiny_model, unseen_text, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--model", tiny_model, "--data", unseen_text, "--out", out, "--max-steps", 8,
                 "--block-size", 64, "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["steps"] == 8 and (out / "metrics.json").is_file()
    runs = [cli("generate", "--model", out, "--prompt", "「科学」とは", "--seed", 1, "--max-new-tokens", 20)
            for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.startswith("「科学」とは")
    assert len(runs[0].stdout.strip()) > len("「科学」とは")


@pytest.mark.parametrize("case", ["missing", "empty", "binary", "bad-flag", "unknown-model", "bad-value"])
def test_user_errors_exit_2_with_one_line_naming_the_reason(case, tiny_model, tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    base = ["train", "--model", tiny_model, "--out", tmp_path / "out", "--device", "cpu"]
    args, reason = {
        "missing": (base + ["--data", tmp_path / "nope.txt"], [f"{tmp_path / 'nope.txt'}", "no such file"]),
        "empty": (base + ["--data", tmp_path / "empty.txt"], ["empty.txt", "empty"]),
        "binary": (base + ["--data", tmp_path / "image.txt"], ["image.txt", "binary", "PNG"]),
        "bad-flag": (base + ["--data", tmp_path / "empty.txt", "--epochz", "3"], ["unrecognized", "--epochz"]),
        "unknown-model": (["generate", "--model", "someone/not-cached-model", "--prompt", "こんにちは"],
                          ["someone/not-cached-model", "not in the local cache", "--model"]),
        "bad-value": (["generate", "--model", tiny_model, "--prompt", "x", "--top-p", "0"], ["top-p", "(0, 1]"]),
    }[case]
    result = cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(word in result.stderr for word in reason), result.stderr


@pytest.mark.parametrize("command", ["prepare", "train", "scratch"])
def test_author_flags_reach_the_read_options_and_flags_gives_them_back(command):
    from finetune.cli import build_parser, read_options
    out = [] if command == "prepare" else ["--out", "run"]
    args = build_parser().parse_args([command, "--data", "blog.xml", *out, "--author", "yama", "--author", "田中 花子",
                                      "--include-drafts"])
    options = read_options(args)
    assert options.authors == ("yama", "田中 花子") and options.include_drafts
    assert options.flags() == ["--include-drafts", "--author", "yama", "--author", "田中 花子"]
    again = build_parser().parse_args([command, "--data", "blog.xml", *out, *options.flags()])
    assert read_options(again) == options


def test_author_flags_reach_the_settings_and_the_shown_command():
    from finetune.cli import build_parser, prepare_settings, train_settings
    from finetune.runner import command_line
    prepare = prepare_settings(build_parser().parse_args(["prepare", "--data", "b.xml", "--author", "yama"]))
    assert prepare.authors == ["yama"] and prepare.read_options().authors == ("yama",)
    train = train_settings(build_parser().parse_args(["train", "--data", "b.xml", "--out", "r", "--author", "田中 花子"]))
    assert train.reading.authors == ("田中 花子",)
    assert "--data b.xml --out r --author '田中 花子'" in command_line(train)
