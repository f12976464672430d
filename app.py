"""GRPO Studio. Run `make run` (or `python app.py`, or `grpo-studio app` once installed) and open
http://127.0.0.1:7860. Also the Hugging Face Space's app_file; `grpo_app/serve.py` says where runs go and how it
listens and stops."""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from grpo_app.serve import build, main  # noqa: E402

demo = build()

if __name__ == "__main__":
    main(demo)
