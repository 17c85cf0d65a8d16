"""日本語GPT ファインチューニング・スタジオ: the Gradio app (a Hugging Face Space, or `python app.py`).

The studio itself is the `studio` package: studio.page builds the page (layout, then wiring),
studio.callbacks holds what each action does (it calls finetune/), studio.view how results are
shown, studio.text every word in Japanese and English, studio.shared the objects all visitors share.
This file only builds `demo` and launches it.
"""
from studio.page import build, launch_options

demo = build()

if __name__ == "__main__":
    # Four requests of one kind at a time (tokenize is instant; generation shares one sampling lock);
    # up to 64 wait in the queue, more are told to come back rather than piling up.
    demo.queue(default_concurrency_limit=4, max_size=64).launch(**launch_options())
