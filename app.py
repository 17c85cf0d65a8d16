"""日本語GPT ファインチューニング・スタジオ: the Gradio app (a Hugging Face Space, or `python app.py`).

The studio itself is the `studio` package: studio.page builds the page (layout, then wiring) and
serves it, studio.callbacks holds what each action does (it calls finetune/), studio.view how
results are shown, studio.text every word in Japanese and English, studio.owners and studio.queue
who owns what and whose run trains next, studio.shared the objects all visitors share.
This file only builds `demo` and launches it.
"""
from studio.page import build, launch_options, serve  # noqa: F401  (launch_options: for tests and scripts)

demo = build()

if __name__ == "__main__":
    serve(demo)
