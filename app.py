"""Hugging Face Space entry point: `python app.py` serves the G²RPO UI on port 7860 and starts an
embedded training worker (set G2RPO_WORKER=external to run workers yourself). See README.md."""
import sys

from app.server import main

if __name__ == "__main__":
    sys.exit(main())
