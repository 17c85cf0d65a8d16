#!/usr/bin/env python3
"""The seed article's fine-tuning recipe, end to end, on today's transformers: the reference that
`python -m finetune bench` times against the engine (its time_to_quality figure).

    python scripts/seed_recipe.py --model assets/tiny-japanese-gpt2 --data testdata.txt --out OUT

What the article does, step by step: AutoTokenizer and AutoModelForCausalLM from the base model;
TextDataset (the whole file tokenized, cut into 128-token blocks, the tail dropped);
DataCollatorForLanguageModeling(mlm=False); Trainer with default TrainingArguments (3 epochs, batch 8,
AdamW at 5e-5 with linear decay, fp32, a checkpoint every 500 steps); train(); save_model().
transformers 5 removed TextDataset, `overwrite_output_dir` and `Trainer(tokenizer=)`: the dataset is
the same few lines written out here, and `processing_class=` replaces `tokenizer=`. The article adds
`use_cpu=True` on a machine without a GPU; `--device cpu` does that.

It imports nothing from this project, so its start-up costs what the article's does. The last line
on stdout is one JSON object: wall-clock times (time.time()) of each stage, for the bench to subtract
from the moment it started this process.
"""
import time

STARTED = time.time()

import argparse  # noqa: E402
import json  # noqa: E402

import torch  # noqa: E402
from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling,  # noqa: E402
                          Trainer, TrainingArguments)

IMPORTED = time.time()
BLOCK_SIZE = 128  # the article's TextDataset(block_size=128)


class TextBlocks(torch.utils.data.Dataset):
    """What transformers' TextDataset did: tokenize the whole file at once and cut the ids into
    `block_size` pieces (the special tokens the tokenizer adds to a sequence count against the
    block; the tail that does not fill one is dropped)."""

    def __init__(self, tokenizer, file_path: str, block_size: int):
        with open(file_path, encoding="utf-8") as f:
            text = f.read()
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
        size = block_size - tokenizer.num_special_tokens_to_add(pair=False)
        self.examples = [tokenizer.build_inputs_with_special_tokens(ids[i:i + size])
                         if hasattr(tokenizer, "build_inputs_with_special_tokens") else ids[i:i + size]
                         for i in range(0, len(ids) - size + 1, size)]

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return torch.tensor(self.examples[i], dtype=torch.long)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="base model folder or Hub id")
    parser.add_argument("--data", required=True, help="the training text (one file, as in the article)")
    parser.add_argument("--out", required=True, help="output folder (the article's `{model_name}-finetuned`)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="cpu = the article's use_cpu=True; auto/cuda = Trainer's own choice")
    args = parser.parse_args()

    marks = {"started": STARTED, "imported": IMPORTED}
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model)
    marks["loaded"] = time.time()
    train_dataset = TextBlocks(tokenizer, args.data, BLOCK_SIZE)
    marks["tokenized"] = time.time()
    data_collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    training_args = TrainingArguments(output_dir=args.out, use_cpu=args.device == "cpu")
    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, data_collator=data_collator,
                      processing_class=tokenizer)
    result = trainer.train()
    marks["trained"] = time.time()
    trainer.save_model()
    marks["saved"] = time.time()
    print(json.dumps({"recipe": "seed", "blocks": len(train_dataset), "steps": result.global_step,
                      "tokens_seen": int(len(train_dataset) * BLOCK_SIZE * training_args.num_train_epochs),
                      "train_loss": result.training_loss, "device": str(training_args.device), "marks": marks}))


if __name__ == "__main__":
    main()
