"""Space entry point: `python app.py` will serve the Gradio UI (built in a later issue).

Until then the product is the engine: train from the CLI, see README.md.
"""
import sys

if __name__ == "__main__":
    sys.exit("The web UI is not built yet. Train from the CLI: "
             "python -m engine.train --config configs/g2rpo.yaml --out runs/my-run (see README.md)")
