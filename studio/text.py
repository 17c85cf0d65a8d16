"""Every word the studio shows, in Japanese (the default) and English, plus its CSS and <head>.

Labels are translated in the browser by gr.I18n (I18N below); text built by callbacks uses
`say(lang, key, **fields)` with the page's language (?lang=en, else Japanese). One catalogue
serves both, so a label and a message can never drift apart.
"""
from __future__ import annotations

import gradio as gr

TEXT = {
    # header and tabs
    "app_title": ("日本語GPT ファインチューニング・スタジオ", "Japanese GPT Fine-tuning Studio"),
    "app_heading": ("# 日本語GPT ファインチューニング・スタジオ\n自分の文章で小さな日本語GPTを学習させ、何を学んだかを確かめ、共有します。",
                    "# Japanese GPT Fine-tuning Studio\nFine-tune a small Japanese GPT on your own text, see what "
                    "it learned, and share it."),
    "tab_tokens": ("トークン", "Tokens"),
    "tab_train": ("学習", "Training"),
    "tab_play": ("試す", "Playground"),
    "tab_share": ("共有", "Share"),
    "error_title": ("エラー", "Error"),
    "owner_signed_in": ("**{user}** としてログイン中です。学習結果は削除するまで残ります（共有タブから削除できます）。",
                        "Signed in as **{user}**: your runs stay until you delete them (Share tab)."),
    "owner_browser": ("ここに表示されるのは、このブラウザで作った学習とファイルだけです（ほかの人には見えません）。"
                      "ログインしていない場合、{hours} 時間後に削除されます。残すにはログインしてください。",
                      "You see only the runs and files made in this browser (nobody else can). Without signing "
                      "in they are deleted after {hours} hours; sign in to keep them."),

    # 1. tokens
    "tokens_intro": ("文を入力すると、モデルがそれをどんなトークン（部品）に分けるかが色分けで表示されます。"
                     "▁ は単語の始まり、点線はバイトに分解された文字、赤は未知語 `<unk>`、紫は特殊トークンです。",
                     "Type a sentence to see how the model cuts it into tokens. ▁ marks a word start, dashed "
                     "boxes are characters spelled in bytes, red is unknown `<unk>`, purple a special token."),
    "sentence": ("文", "Sentence"),
    "tokenizer": ("トークナイザー（モデル）", "Tokenizer (model)"),
    "tokenizer_info": ("一覧から選ぶか、Hub の ID やフォルダを入力", "pick one, or type a Hub id or a folder"),
    "compare_tokenizers": ("2つのトークナイザーを並べて比べる", "Compare two tokenizers side by side"),
    # why the embedded model is preselected instead of rinna/japanese-gpt2-xsmall (finetune.hubmodels reasons)
    "model_note_offline-mode": ("オフラインモード（HF_HUB_OFFLINE）のため、内蔵モデルを既定にしています。"
                                "Hub のモデルは、キャッシュにあるものだけ使えます。",
                                "Offline mode (HF_HUB_OFFLINE) is on, so the embedded model is the default; Hub "
                                "models work only when they are already in the cache."),
    "model_note_hub-unreachable": ("Hugging Face Hub に接続できなかったため、内蔵モデルを既定にしています。",
                                   "The Hugging Face Hub could not be reached, so the embedded model is the default."),
    "model_note_cached-offline": ("Hub に接続できませんが、rinna/japanese-gpt2-xsmall がキャッシュにあるので、"
                                  "それを既定にしています（ほかの Hub のモデルはダウンロードできません）。",
                                  "The Hub cannot be reached, but rinna/japanese-gpt2-xsmall is in the cache, so "
                                  "it is the default (other Hub models cannot be downloaded)."),
    "tokenizer_b": ("比べるトークナイザー", "Second tokenizer"),
    "tokens_json": ("トークンとIDのデータ（JSON）", "Tokens and ids (JSON)"),
    "embedded_model": ("内蔵モデル（tiny-japanese-gpt2・オフライン）", "Embedded model (tiny-japanese-gpt2, offline)"),
    "token_counts": ("{count} トークン · {characters} 文字 · 1トークンあたり {ratio} 文字",
                     "{count} tokens · {characters} characters · {ratio} characters per token"),
    "compare_line": ("{other} と比べて {diff:+d} トークン（×{ratio:.2f}）", "{diff:+d} tokens compared with {other} (×{ratio:.2f})"),
    "ids_label": ("トークンID（順番どおり）", "Token ids (in order)"),
    "kind_word": ("▁単語の始まり", "▁word start"),
    "kind_byte": ("バイト", "bytes"),
    "kind_unk": ("未知語 <unk>", "unknown <unk>"),
    "kind_special": ("特殊トークン", "special token"),
    "parity_mismatch": ("このトークナイザーは sentencepiece 本体と違う分け方をします（transformers の読み込みの問題）。"
                        "未知の文字が別のIDになるなど、学習や生成が正しくない可能性があります。",
                        "This tokenizer disagrees with sentencepiece itself (a transformers loading problem): "
                        "unknown characters may get wrong ids, so training and generation may be wrong."),
    "parity_repaired": ("transformers が誤って読み込んだトークナイザーを sentencepiece のモデルから作り直しました"
                        "（結果は sentencepiece と一致しています）。",
                        "transformers loaded this tokenizer wrongly; it was rebuilt from its sentencepiece model "
                        "and now matches sentencepiece."),

    # 2. training
    "data_heading": ("### 1. データ", "### 1. Data"),
    "files": ("ファイル（.txt .md .html .xml .jsonl .json .csv .zip）",
              "Files (.txt .md .html .xml .jsonl .json .csv .zip)"),
    "pasted": ("または文章を貼り付け", "Or paste text"),
    # blog exports (the options of finetune.formats.ReadOptions)
    "blog_options": ("**ブログのエクスポート**（はてなブログ・WordPress・note・Blogger・Medium・Zenn/Qiita/Hugo の Markdown）は、"
                     "公開済みの記事だけを1記事1文書で使います。",
                     "**Blog exports** (Hatena Blog, WordPress, note, Blogger, Medium, Zenn/Qiita/Hugo Markdown): only "
                     "the published posts are used, one document per post."),
    "include_drafts": ("下書き・非公開の記事も使う", "Include drafts and unpublished posts"),
    "include_comments": ("読者のコメントも使う", "Include readers' comments"),
    "titles": ("記事のタイトルを1行目に入れる", "Each post's title as its first line"),
    "keep_code": ("コードブロックを残す", "Keep code blocks"),
    "authors": ("著者で絞る（カンマ区切り、空ならすべて）", "Only these authors (comma-separated; empty: all)"),
    "authors_placeholder": ("例：yama, 田中", "e.g. yama, Tanaka"),
    "pasted_placeholder": ("ここに学習させたい文章を貼り付けます", "Paste the text to learn from here"),
    "check_data": ("データを確認", "Check the data"),
    "block_preview": ("学習ブロックのプレビュー", "Preview of the training blocks"),
    "settings_heading": ("### 2. 設定", "### 2. Settings"),
    "base_model": ("ベースモデル", "Base model"),
    "base_model_info": ("Hub の ID やフォルダも入力できます", "a Hub id or folder works too"),
    "scratch_model": ("新しいモデルをゼロから作る（トークナイザーも新規）", "New model from scratch (new tokenizer too)"),
    "method": ("学習方法", "Method"),
    "method_full": ("フル（全重み）", "Full (all weights)"),
    "method_full_short": ("フル", "full"),
    "epochs": ("エポック数", "Epochs"),
    "max_steps": ("最大ステップ数", "Max steps"),
    "max_steps_info": ("0 = エポック数で決める", "0 = decided by epochs"),
    "learning_rate": ("学習率", "Learning rate"),
    "learning_rate_info": ("0 = 既定（フル 5e-5・LoRA 2e-4）", "0 = default (full 5e-5, LoRA 2e-4)"),
    "batch_size": ("バッチサイズ", "Batch size"),
    "block_size": ("ブロック長（トークン）", "Block size (tokens)"),
    "block_size_info": ("1つの学習例の長さ。0 = 自動（CPU は 128、GPU はモデルの最大 1024 まで）",
                        "length of one training example; 0 = automatic (128 on CPU, up to 1024 on GPU)"),
    "batch_size_info": ("1ステップのブロック数。0 = 自動（CPU は 8、GPU は文章の量に合わせて最大 64×1024 トークン）",
                        "blocks per step; 0 = automatic (8 on CPU; on GPU from the amount of text, up to 64×1024 tokens)"),
    "device": ("デバイス", "Device"),
    "device_auto": ("自動", "auto"),
    "advanced": ("詳細設定", "Advanced settings"),
    "lora_r_info": ("ランク：大きいほど表現力が増える", "rank: higher = more capacity"),
    "lora_alpha_info": ("更新は alpha/r 倍される", "the update is scaled by alpha/r"),
    "heldout": ("検証用に取り分ける割合", "Held-out share"),
    "heldout_info": ("学習に使わず、前後のパープレキシティを測る部分", "not trained on; measures perplexity before and after"),
    "seed": ("シード", "Seed"),
    "warmup_steps": ("ウォームアップ（ステップ）", "Warm-up steps"),
    "precision": ("数値精度", "Precision"),
    "scratch_heading": ("**ゼロから作るモデルの大きさ**", "**Size of the new model**"),
    "vocab_size": ("語彙数", "Vocabulary"),
    "layers": ("層数", "Layers"),
    "width": ("幅", "Width"),
    "heads": ("ヘッド数", "Heads"),
    "cli_command": ("同じ学習をコマンドラインで", "The same run from a terminal"),
    "start": ("学習を開始", "Start training"),
    "cancel": ("キャンセル", "Cancel"),
    "loss_plot": ("損失（loss）", "Loss"),
    "log": ("ログ", "Log"),
    "series_train": ("学習", "training"),
    "series_heldout": ("検証", "held-out"),
    "sum_item": ("項目", "Item"),
    "sum_value": ("値", "Value"),
    "sum_documents": ("文書", "Documents"),
    "sum_characters": ("文字数", "Characters"),
    "sum_tokens": ("トークン数", "Tokens"),
    "sum_heldout": ("検証用", "Held out"),
    "sum_heldout_value": ("{share:.0%}（{blocks} ブロック・{tokens:,} トークン）", "{share:.0%} ({blocks} blocks, {tokens:,} tokens)"),
    "sum_blocks": ("学習ブロック", "Training blocks"),
    "sum_blocks_value": ("{blocks} 個 × {size} トークン", "{blocks} × {size} tokens"),
    "sum_dropped": ("使われないトークン（端数）", "Dropped tokens (tail)"),
    "sum_posts": ("ブログの記事", "Blog posts"),
    "sum_posts_comments": ("（ほかに読者のコメント {comments} 件）", " (and readers' comments: {comments})"),
    "sum_left_out": ("使わなかったもの", "Left out"),
    "sum_left_out_of_which": ("（うち{items}）", " (of which {items})"),
    "count_items": ("{count} 件", "{count}"),
    "file_posts": ("{format}・記事 {posts} 件・{characters:,} 文字", "{format}, posts: {posts}, characters: {characters:,}"),
    "file_comments": ("・読者のコメント {comments} 件", ", readers' comments: {comments}"),
    "left_out": ("使わなかったもの：{items}", "Left out: {items}"),
    "left_out_item": ("{what} {count} 件", "{what}: {count}"),
    "left_out_option": ("（「{options}」にチェックすると使えます）", " (tick “{options}” to use them)"),
    "left_out_authors": ("（「著者で絞る」に名前を加えると使えます）", " (add their names to “Only these authors” to use them)"),
    "left_out_option_authors": ("（「{options}」にチェックするか、「著者で絞る」に名前を加えると使えます）",
                                " (tick “{options}” or add their names to “Only these authors” to use them)"),
    "file_authors": ("著者：{items}", "Authors: {items}"),
    "author_item": ("{name} {count} 件", "{name}: {count}"),
    "authors_hint": ("（「著者で絞る」に名前を入れると、その著者の記事だけを使います）",
                     " (write names in “Only these authors” to use only their posts)"),
    "only_left_out": ("公開済みの記事はありません", "no published post"),
    "nothing_usable": ("使えるテキストがありません（理由はファイルごとに上に書いてあります）",
                       "Nothing usable (each file's reason is above)"),
    "the_upload": ("アップロードしたファイル", "the upload"),
    # the blog readers' formats (finetune.formats.READERS), as bloggers know them
    "format_movable-type": ("はてなブログ / Movable Type", "Hatena Blog / Movable Type"),
    "format_wordpress": ("WordPress / note", "WordPress / note"),
    "format_atom": ("Blogger / Atom", "Blogger / Atom"),
    "format_medium": ("Medium", "Medium"),
    "format_markdown": ("Markdown", "Markdown"),
    "dump_file": ("学習に使う文書をダウンロード（整形済み・1行1文書の .jsonl）",
                  "Download the documents training will use (cleaned, one JSON line each, .jsonl)"),
    "file_used": ("{format}・{documents} 文書・{characters:,} 文字", "{format}, {documents} documents, {characters:,} characters"),
    "scratch_counts_note": ("※ トークン数は内蔵モデルのトークナイザーでの概算です。ゼロから作る場合は、この文章で新しいトークナイザーを学習します。",
                            "Token counts use the embedded model's tokenizer as an estimate: a new model gets a "
                            "new tokenizer trained on this text."),
    "no_blocks": ("（データを確認すると、最初のブロックがここに表示されます）", "(check the data to see the first blocks here)"),
    "block_title": ("ブロック {index}（{tokens} トークン）", "Block {index} ({tokens} tokens)"),
    "block_masked": ("⟦ ⟧ 内の {masked} トークンは質問部分で、学習しません", "{masked} tokens in ⟦ ⟧ are questions, not learned"),
    "job_idle": ("学習はまだ始まっていません。", "No training has started yet."),
    "state_queued": ("順番待ち", "waiting for its turn"),
    "job_place": ("{place} 番目（前に {ahead} 件）", "number {place} in line ({ahead} ahead)"),
    "job_wait": ("開始まで約 {wait}", "starts in about {wait}"),
    "job_wait_unknown": ("開始までの時間は、学習中の人の最初のステップが終わると見積もれます", "the wait can be estimated once the running training has taken its first steps"),
    "job_leave": ("キャンセルで列から抜けます", "Cancel leaves the line"),
    "state_running": ("学習中", "training"),
    "state_stopping": ("停止中…", "stopping…"),
    "state_done": ("完了", "done"),
    "state_stopped": ("キャンセル（結果は保存済み）", "cancelled (result saved)"),
    "state_error": ("失敗", "failed"),
    "job_steps": ("ステップ {step}/{total}", "step {step}/{total}"),
    "job_eta": ("残り約 {eta}", "about {eta} left"),
    "job_speed": ("{speed:,.0f} トークン/秒", "{speed:,.0f} tokens/s"),
    "result_title": ("結果", "Result"),
    "result_perplexity": ("検証パープレキシティ：**{before:.2f} → {after:.2f}**（{change:+.1%}）",
                          "Held-out perplexity: **{before:.2f} → {after:.2f}** ({change:+.1%})"),
    "result_steps": ("{steps} ステップ・{seconds} 秒・{speed:,.0f} トークン/秒", "{steps} steps, {seconds} s, {speed:,.0f} tokens/s"),
    "result_folder": ("保存先：`{folder}`", "Saved in `{folder}`"),
    "result_stopped": ("途中でキャンセルしました。ここまでに学習した結果を保存してあります。",
                       "Cancelled part-way; what was learned so far is saved."),
    "trained_prefix": ("学習済み", "trained"),
    "interrupted_heading": ("**中断された学習があります。** アプリの再起動などで途中で止まった学習を、最後のチェックポイントから再開できます。",
                            "**Interrupted training.** A run stopped part-way (the app was restarted, for instance) "
                            "can continue from its last checkpoint."),
    "interrupted_run": ("中断された学習", "Interrupted run"),
    "resume": ("再開", "Resume"),
    "interrupted_resumable": ("{name}（ステップ {step}/{total} で中断・{checkpoint} から再開）",
                              "{name} (stopped at step {step}/{total}; resumes from {checkpoint})"),
    "interrupted_no_checkpoint": ("{name}（ステップ {step}/{total} で中断・チェックポイントがないので再開できません）",
                                  "{name} (stopped at step {step}/{total}; no checkpoint, cannot be resumed)"),
    "interrupted_scratch": ("{name}（ゼロから作ったモデルは再開できません）", "{name} (a model from scratch cannot be resumed)"),

    # 3. playground
    "model": ("モデル", "Model"),
    "mode": ("モード", "Mode"),
    "mode_complete": ("続きを書く", "Continue the text"),
    "mode_qa": ("質問に答える（Q&A で学習したモデル）", "Answer a question (models trained on Q&A)"),
    "side_by_side": ("ベースと学習後を並べる", "Base and fine-tuned side by side"),
    "side_by_side_info": ("同じプロンプト・同じシードで2つのモデルを比べます", "same prompt and seed through both models"),
    "base_side": ("ベース（学習前）", "Base (before)"),
    "tuned_side": ("学習後", "Fine-tuned"),
    "chat": ("会話", "Chat"),
    "prompt": ("プロンプト", "Prompt"),
    "prompt_placeholder": ("書き出しや質問を入力して Enter", "Type an opening or a question, then Enter"),
    "send": ("生成", "Generate"),
    "send_compare": ("比較生成", "Compare"),
    "stop": ("停止", "Stop"),
    "clear": ("クリア", "Clear"),
    "examples": ("例", "Examples"),
    "sampling": ("生成の設定", "Sampling"),
    "max_new_tokens": ("生成する最大トークン数", "Max new tokens"),
    "temperature": ("温度", "Temperature"),
    "temperature_info": ("0 = いつも最も確からしいトークン", "0 = always the most likely token"),
    "top_k_info": ("0 = 制限なし", "0 = no limit"),
    "repetition_penalty": ("繰り返しペナルティ", "Repetition penalty"),
    "gen_seed_info": ("同じシード・同じモデル・同じプロンプトなら同じ文章", "same seed, model and prompt = same text"),

    # 4. share
    "trained_model": ("学習済みモデル", "Trained model"),
    "zip_heading": ("### ZIP でダウンロード", "### Download as a zip"),
    "merge": ("LoRA をベースに統合する", "Merge LoRA into the base model"),
    "merge_info": ("LoRA のときだけ：transformers だけで読める1つのモデルにします", "LoRA only: one model that plain transformers loads"),
    "make_zip": ("ZIP を作る", "Make the zip"),
    "zip_file": ("ZIP ファイル", "Zip file"),
    "hub_heading": ("### Hugging Face Hub へ公開", "### Push to the Hugging Face Hub"),
    "repo": ("リポジトリ名", "Repository name"),
    "private": ("非公開にする", "Private"),
    "token": ("アクセストークン（write 権限）", "Access token (write role)"),
    "token_info": ("入力すると、このトークンを使います", "when given, this token is used"),
    "token_typed": ("アップロードには**入力したトークン**を使います。", "The push will use **the token you typed**."),
    "token_signed_in": ("アップロードには**ログイン中のアカウント（{user}）**のトークンを使います。",
                        "The push will use **your signed-in account ({user})**."),
    "token_local": ("アップロードには**このマシンのトークン**（HF_TOKEN または `hf auth login`）を使います。",
                    "The push will use **this machine's token** (HF_TOKEN or `hf auth login`)."),
    "token_none_space": ("トークンがありません：「Sign in with Hugging Face」でログインするか、write 権限のトークンを入力してください"
                         "（この Space のサーバーのトークンは使いません）。",
                         "No token: sign in with Hugging Face or type a write token (this Space never uses its "
                         "server's own token for your push)."),
    "token_none_local": ("トークンがありません：HF_TOKEN を設定するか、トークンを入力してください。",
                         "No token: set HF_TOKEN or type a token."),
    "delete_run": ("この学習を削除…", "Delete this run…"),
    "delete_confirm": ("本当に削除する", "Delete for good"),
    "delete_hint": ("モデル・ログ・ZIP を消します。元に戻せません。", "Removes the model, its log and its zip; this cannot be undone."),
    "deleted": ("{name} を削除しました。", "{name} was deleted."),
    "push": ("Hub にアップロード", "Push to the Hub"),
    "hub_ok": ("Hub に接続できます。", "The Hub is reachable."),
    "hub_unreachable": ("Hub に接続できません（オフライン）。ZIP をダウンロードしてください。",
                        "The Hub cannot be reached (offline); download the zip instead."),

    # errors (the engine's English detail follows the Japanese)
    "err_busy": ("別の学習が実行中です。終わるのを待つか、キャンセルしてから始めてください。",
                 "Another training run is in progress; wait for it or cancel it first."),
    "err_line_full": ("学習の順番待ちが満員です。しばらくしてからもう一度試してください。",
                      "The line of runs waiting to train is full; try again later."),
    "err_no_run": ("その学習は見つかりません", "No such run"),
    "err_model": ("モデルを読み込めません", "Cannot load the model"),
    "err_data": ("データに問題があります", "There is a problem with the data"),
    "err_diverged": ("学習が発散しました（学習率を下げてください）", "Training diverged (lower the learning rate)"),
    "err_memory": ("メモリが足りません（バッチサイズかブロック長を下げるか、LoRA にしてください）",
                   "Out of memory (lower the batch size or the block size, or use LoRA)"),
    "err_disk": ("ディスクが一杯で保存できませんでした（書きかけのファイルは消しました）",
                 "The disk is full, so saving failed (the half-written files were removed)"),
    "err_value": ("設定値が正しくありません", "A setting is not valid"),
    "err_other": ("処理できませんでした", "Could not do that"),
    "err_training": ("学習に失敗しました", "Training failed"),
}

# Exception class names (finetune.errors and friends) -> the catalogue key of their Japanese lead.
ERROR_KEYS = {"LineFull": "err_line_full", "NoSuchRun": "err_no_run", "JobBusy": "err_busy",
              "ModelNotAvailable": "err_model", "DataError": "err_data",
              "Diverged": "err_diverged", "OutOfMemory": "err_memory", "DiskFull": "err_disk",
              "ValueError": "err_value"}

I18N = gr.I18n(ja={key: ja for key, (ja, _) in TEXT.items()}, en={key: en for key, (_, en) in TEXT.items()})


def say(lang: str, key: str, **fields) -> str:
    """The catalogue text for `key` in `lang` ('ja' or 'en'), with `fields` filled in."""
    ja, en = TEXT[key]
    return (en if lang == "en" else ja).format(**fields)


def error_text(err: Exception) -> str:
    """A Japanese message for an engine error: the error's own Japanese when it has one (share
    errors do), else a Japanese lead naming the kind of problem and the engine's detail."""
    own = getattr(err, "message_ja", None)
    if own:
        return own
    kind = next((ERROR_KEYS[cls.__name__] for cls in type(err).__mro__ if cls.__name__ in ERROR_KEYS), "err_other")
    return say("ja", kind) if kind in ("err_busy", "err_line_full") else f"{say('ja', kind)}：{err}"


def job_error_text(message: str, kind: str, lang: str) -> str:
    """Why a training run failed, from its progress log (the exception is gone by then)."""
    lead = ERROR_KEYS.get(kind, "err_training")
    return f"{say(lang, lead)}：{message}"


# The page's language follows ?lang=en, else Japanese, whatever the browser's language. gr.I18n
# starts from the browser's language, so on load the page switches Gradio's own locale store (the
# function its Settings panel uses) to the chosen one. The links in the header switch languages.
ON_LOAD_JS = """async () => {
  const lang = new URLSearchParams(window.location.search).get("lang") === "en" ? "en" : "ja";
  const core = performance.getEntriesByType("resource").map((entry) => entry.name)
    .find((name) => /\\/assets\\/core-[\\w-]+\\.js$/.test(name));
  if (core) (await import(core)).changeLocale(lang);
}"""

CSS = """
.app-header { align-items: center; }
.lang-links { text-align: right; }
.token-view { padding: 8px 4px; }
.token-model { font-weight: 600; margin-bottom: 6px; }
.tokens { font-size: 1.25rem; line-height: 2.3; white-space: pre-wrap; word-break: break-all; color: #111; }
.tok { border-radius: 4px; padding: 2px 1px; margin: 0 1px; }
.tok.c0 { background: #dbeafe; } .tok.c1 { background: #fce7f3; } .tok.c2 { background: #dcfce7; }
.tok.c3 { background: #fef3c7; } .tok.c4 { background: #e0e7ff; }
.tok.wordstart::before { content: "▁"; color: #64748b; font-size: 0.8em; }
.tok.byte { background: #ffedd5; outline: 1px dashed #ea580c; }
.tok.unk { background: #fecaca; outline: 2px solid #dc2626; }
.tok.special { background: #ede9fe; outline: 2px solid #7c3aed; }
.tok.ws { outline: 1px dotted #64748b; }
.tok.nl::before { content: "↵"; color: #64748b; }
.tok.empty::before { content: attr(data-token); color: #64748b; font-size: 0.8em; }
.counts { margin-top: 8px; font-weight: 600; }
.compare-line { color: #475569; }
.ids-label { margin-top: 8px; font-size: 0.85rem; color: #475569; }
.ids { font-family: ui-monospace, monospace; font-size: 0.85rem; word-break: break-all; }
.legend { margin-top: 8px; font-size: 0.8rem; display: flex; gap: 10px; flex-wrap: wrap; color: #111; }
.legend .legend-item { padding: 1px 6px; }
.legend .tok.word { background: #dbeafe; }
.note { padding: 6px 10px; border-radius: 6px; margin: 6px 0; }
.note.warn { background: #fef2f2; border: 1px solid #dc2626; color: #7f1d1d; }
.note.info { background: #eff6ff; border: 1px solid #2563eb; color: #1e3a8a; }
.job { padding: 6px 0; }
.job-bar { height: 14px; background: #e2e8f0; border-radius: 7px; overflow: hidden; }
.job-fill { height: 100%; background: #6366f1; transition: width 0.5s; }
.job.done .job-fill { background: #16a34a; } .job.stopped .job-fill { background: #d97706; }
.job.error .job-fill { background: #dc2626; }
.job-line { margin-top: 4px; }
.job-percent { float: right; color: #475569; }
.job.queued .job-fill { background: #94a3b8; }
"""
