"""GRPO Studio. Run `make run` (or `python app.py`) and open http://127.0.0.1:7860.

Also the Hugging Face Space's app_file. Host and port follow GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from grpo_app.ui import CSS, THEME, create_ui  # noqa: E402

demo = create_ui(runs_root=os.environ.get("GRPO_STUDIO_RUNS", "runs"))

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4).launch(theme=THEME, css=CSS, show_error=True)
