"""The model card (README.md) of a shared model: Hub metadata, then a Japanese body with an English
summary. It describes the training text by counts only (files, characters, tokens), never by
content, names, or paths, and carries a usage snippet that generates correctly (no EOS on the prompt).
"""
from __future__ import annotations

import math

SAMPLE_PROMPT = "今日は"   # neutral; the card never quotes the user's text
STUDIO_TAG = "japanese-finetune-studio"


def number(value, digits: int = 2) -> str:
    """A metric for a table cell: rounded, with thousands separators, or a dash when missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def card_metadata(folder, what: str, license: str):
    """ModelCardData for the Hub: base_model only when it is a real Hub id."""
    from huggingface_hub import ModelCardData
    tags = ["japanese", "text-generation", "from-scratch" if folder.from_scratch else "fine-tuned", STUDIO_TAG]
    if folder.kind == "lora":
        tags.append("lora")
        if adapter_label(folder) == "QLoRA":
            tags.append("qlora")
    elif not folder.from_scratch:
        tags.append("full-fine-tuning")
    if folder.kind == "lora" and what != "adapter":
        tags.append("merged-lora")
    return ModelCardData(
        base_model=folder.hub_base, language="ja", license=license,
        library_name="peft" if what == "adapter" else "transformers",
        pipeline_tag="text-generation", tags=tags)


def usage_snippet(repo_ref: str, what: str, base_ref: str, base_on_hub: bool) -> str:
    """Python that loads this repo and continues a prompt. The prompt is encoded without special
    tokens: a trailing </s> would tell the model the text has already ended."""
    if what == "adapter":
        if base_on_hub:
            load = ("from peft import AutoPeftModelForCausalLM\n\n"
                    f'repo = "{repo_ref}"\n'
                    "tokenizer = AutoTokenizer.from_pretrained(repo)\n"
                    "model = AutoPeftModelForCausalLM.from_pretrained(repo)  # downloads the base model too\n")
        else:
            load = ("from peft import PeftModel\n\n"
                    f'repo = "{repo_ref}"\n'
                    f'base = AutoModelForCausalLM.from_pretrained("path/to/{base_ref}")  # the base is not on the Hub\n'
                    "tokenizer = AutoTokenizer.from_pretrained(repo)\n"
                    "model = PeftModel.from_pretrained(base, repo)\n")
    else:
        load = (f'repo = "{repo_ref}"\n'
                "tokenizer = AutoTokenizer.from_pretrained(repo)\n"
                "model = AutoModelForCausalLM.from_pretrained(repo)\n")
    return ("import torch\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            + ("" if load.startswith("from") else "\n") + load +
            "\n"
            f'prompt = "{SAMPLE_PROMPT}"\n'
            "# add_special_tokens=False: no </s> at the end of the prompt\n"
            'inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")\n'
            "torch.manual_seed(0)\n"
            "output = model.generate(**inputs, max_new_tokens=60, do_sample=True, temperature=0.8, top_p=0.95,\n"
            "                        repetition_penalty=1.1, pad_token_id=tokenizer.pad_token_id)\n"
            "print(tokenizer.decode(output[0], skip_special_tokens=True))\n")


def adapter_label(folder) -> str:
    """"QLoRA" for an adapter trained on 4-bit weights (--method qlora), else "LoRA"."""
    method = folder.config.get("method") or folder.metrics.get("method")
    return "QLoRA" if method == "qlora" else "LoRA"


def settings_rows(folder) -> list[tuple[str, str, str]]:
    """(Japanese label, English label, value) for the settings table."""
    c, m = folder.config, folder.metrics
    rows = [("方法", "method", adapter_label(folder) if folder.kind == "lora" else "full（全パラメータ）"),
            ("ステップ数", "optimizer steps", number(m.get("steps"))),
            ("ブロック長（トークン数）", "block size (tokens)", number(m.get("block_size", c.get("block_size")))),
            ("バッチサイズ", "batch size", number(c.get("batch_size"))),
            ("学習率", "learning rate", f"{c['lr']:g}" if isinstance(c.get("lr"), (int, float)) else "—"),
            ("ウォームアップ", "warm-up steps", number(c.get("warmup_steps"))),
            ("シード", "seed", number(c.get("seed"))),
            ("デバイス / 精度", "device / precision", f"{m.get('device', '—')} / {m.get('precision', '—')}")]
    if folder.kind == "lora" and isinstance(c.get("lora"), dict):
        lora = c["lora"]
        targets = ", ".join(lora.get("targets") or []) or "architecture default"
        rows.append(("LoRA r / alpha / dropout / 対象", "LoRA r / alpha / dropout / targets",
                     f"{lora.get('r')} / {lora.get('alpha')} / {lora.get('dropout')} / {targets}"))
    return rows


def layout_text(what: str) -> tuple[str, str]:
    """How the repo is laid out, in Japanese and English."""
    if what == "adapter":
        return ("LoRA アダプタ（`adapter_model.safetensors`, `adapter_config.json`）。peft で読み込みます。",
                "The LoRA adapter (`adapter_model.safetensors`, `adapter_config.json`); load it with peft.")
    if what == "both":
        return ("ルートに LoRA をマージ済みの完全なモデル（transformers だけで読み込めます）、"
                "`adapter/` に LoRA アダプタ（`PeftModel.from_pretrained(base, repo, subfolder=\"adapter\")`）。",
                "The merged full model in the root (plain transformers) and the LoRA adapter under `adapter/` "
                "(`PeftModel.from_pretrained(base, repo, subfolder=\"adapter\")`).")
    return ("完全なモデル（`model.safetensors`）。transformers だけで読み込めます。",
            "The full model (`model.safetensors`); plain transformers loads it.")


def base_text(folder) -> tuple[str, str]:
    if folder.hub_base:
        return (f"ベースモデル: [{folder.hub_base}](https://huggingface.co/{folder.hub_base})",
                f"Base model: [{folder.hub_base}](https://huggingface.co/{folder.hub_base})")
    if folder.from_scratch:
        return ("ベースモデルなし: トークナイザーもモデルも、利用者の文章だけからゼロから学習しました。",
                "No base model: the tokenizer and the model were trained from scratch on the author's text.")
    if folder.embedded_base:
        return ("ベースモデル: このツールに同梱の小さな日本語モデル `tiny-japanese-gpt2`"
                "（ツール自身のオリジナル文章で学習したもの）。**Hub にはありません。**",
                "Base model: `tiny-japanese-gpt2`, the small Japanese model embedded in the fine-tuning tool "
                "(trained on the tool's own original text). **It is not on the Hub.**")
    return (f"ベースモデル: ローカルのモデル `{folder.base_name}`（Hub 上の場所は不明です）。",
            f"Base model: the local model `{folder.base_name}` (its Hub location is unknown).")


def tokenizer_text(folder) -> tuple[str, str] | None:
    """The note on rinna-style sentencepiece tokenizers, when it applies."""
    parity = folder.metrics.get("tokenizer_parity")
    rinna = (folder.hub_base or "").startswith("rinna/")
    if parity == "mismatch":
        return ("**注意:** 学習時のトークナイザーは sentencepiece と一致しませんでした（修復できませんでした）。",
                "**Warning:** the tokenizer used in training did not match sentencepiece and could not be repaired.")
    if not (rinna or parity == "repaired"):
        return None
    return ("rinna のモデルは `tokenizer_config.json` で `T5Tokenizer` を指定していますが、transformers 5 の "
            "`T5Tokenizer` は未知の文字をすべて `</s>`（id 2）に変え、`do_lower_case` も無視します。"
            "このリポジトリの `tokenizer.json` は `spiece.model` から作り直した**修正済み**のもので、"
            "sentencepiece 本体と同じトークン列を返します（`AutoTokenizer.from_pretrained` でそのまま使えます）。",
            "rinna's models name `T5Tokenizer`, which in transformers 5 maps every unknown character to `</s>` "
            "(id 2) and ignores `do_lower_case`. This repo's `tokenizer.json` is the repaired one, rebuilt "
            "from `spiece.model`; it matches sentencepiece and loads with plain `AutoTokenizer.from_pretrained`.")


def intro_ja(folder) -> str:
    if folder.from_scratch:
        return "利用者自身の日本語テキストだけでゼロから学習した小さな日本語言語モデルです。"
    return ("利用者自身の日本語テキストでファインチューニングした小さな日本語言語モデルです"
            f"（{adapter_label(folder) if folder.kind == 'lora' else '全パラメータ'}学習）。")


def intro_en(folder) -> str:
    if folder.from_scratch:
        return "A small Japanese causal language model trained from scratch on its author's own text."
    method = adapter_label(folder) if folder.kind == "lora" else "full fine-tuning"
    return f"A small Japanese causal language model fine-tuned on its author's own text ({method})."


def card_body(folder, what: str, repo_ref: str) -> str:
    m = folder.metrics
    name = repo_ref.rstrip("/").split("/")[-1]
    base_ja, base_en = base_text(folder)
    layout_ja, layout_en = layout_text(what)
    tokenizer = tokenizer_text(folder)
    snippet = usage_snippet(repo_ref, what, folder.hub_base or folder.base_name, folder.hub_base is not None)
    settings = "\n".join(f"| {ja} / {en} | {value} |" for ja, en, value in settings_rows(folder))
    before, after = m.get("heldout_perplexity_before"), m.get("heldout_perplexity_after")
    lines = [
        f"# {name}",
        "",
        intro_ja(folder),
        "",
        f"- {base_ja}",
        f"- 中身: {layout_ja}",
        "",
        "## 学習データ",
        "",
        "学習に使った文章そのものと、学習ファイルの名前・パスはこのリポジトリに含まれていません。分量だけを記します。",
        "",
        "| 項目 | 値 |",
        "|---|---|",
        f"| ファイル（文書）数 | {number(m.get('documents'))} |",
        f"| 文字数 | {number(m.get('characters'))} |",
        f"| 学習トークン数 | {number(m.get('train_tokens'))} |",
        f"| 検証用（学習に使わない）トークン数 | {number(m.get('heldout_tokens'))} |",
        f"| 学習中に読んだトークン数 | {number(m.get('tokens_seen'))} |",
        "",
        "## 学習設定",
        "",
        "| 項目 | 値 |",
        "|---|---|",
        settings,
        "",
        "## 評価",
        "",
        "学習に使っていない検証用テキストでのパープレキシティ（低いほど、その文章をよく予測できる）:",
        "",
        "| | 学習前 / before | 学習後 / after |",
        "|---|---|---|",
        f"| パープレキシティ / perplexity | {number(before)} | {number(after)} |",
        f"| 損失 / loss | {number(m.get('heldout_loss_before'), 4)} | {number(m.get('heldout_loss_after'), 4)} |",
        "",
    ]
    if tokenizer:
        lines += ["## トークナイザーについて", "", tokenizer[0], ""]
    lines += [
        "## 使い方",
        "",
        "プロンプトは `add_special_tokens=False` で符号化します（末尾に `</s>` が付くと、"
        "モデルは文章がもう終わったと受け取ります）。",
        "",
        "```python",
        snippet.rstrip(),
        "```",
        "",
        "---",
        "",
        "## English summary",
        "",
        f"{intro_en(folder)} {base_en} Contents: {layout_en[0].lower()}{layout_en[1:]}",
        "",
        f"Training text: files {number(m.get('documents'))}, characters {number(m.get('characters'))}, "
        f"training tokens {number(m.get('train_tokens'))}, held-out tokens {number(m.get('heldout_tokens'))} "
        "(neither the text itself nor the training files' names or paths are included). "
        f"Held-out perplexity before → after training: {number(before)} → {number(after)}. "
        "Settings are in the table above and in `training_config.json`; all numbers are in `metrics.json`.",
        "",
    ]
    if tokenizer:
        lines += [f"Tokenizer: {tokenizer[1]}", ""]
    lines += ["Usage: the snippet above; encode prompts with `add_special_tokens=False` so that they do not end "
              "in `</s>`.", ""]
    return "\n".join(lines)


def model_card(folder, what: str, repo_ref: str, license: str):
    """The huggingface_hub ModelCard (metadata + body) for a staged repo."""
    from huggingface_hub import ModelCard
    data = card_metadata(folder, what, license)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(folder, what, repo_ref)}")
