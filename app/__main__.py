"""`python -m app [--model FILE] [--host H] [--port N] [--share]`: serve the demo, offline by default."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home


def main(argv: Sequence[str] | None = None) -> int:
    from app.bundle import DEFAULT_MODEL

    parser = argparse.ArgumentParser(
        prog="python -m app", description="Serve the S4 speech-commands demo (offline; http://127.0.0.1:7860)."
    )
    parser.add_argument("--model", type=Path, default=None, help=f"exported model (default: {DEFAULT_MODEL})")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public link (needs internet)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests: noise in the log

    from app.bundle import load_bundle
    from app.ui import build_demo
    from training.serving import ModelFileError

    bundle, load_error = None, None
    if args.model is not None:
        try:
            bundle = load_bundle(args.model)
        except (ModelFileError, OSError, ValueError) as error:
            print(f"error: cannot load model {args.model}: {error}", file=sys.stderr)
            return 2
    elif DEFAULT_MODEL.is_file():
        bundle = load_bundle(DEFAULT_MODEL)
    else:
        load_error = f"The bundled model {DEFAULT_MODEL} is missing: train one, or pass --model FILE."
        print(f"warning: {load_error} The app starts without a model.", file=sys.stderr)
    demo = build_demo(bundle, load_error)
    demo.queue().launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
