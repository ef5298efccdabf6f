"""`python -m engine.attribution`: see engine/attribution/__init__.py."""
import sys

from engine.attribution import main

sys.exit(main())
