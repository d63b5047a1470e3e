"""``python -m mlkit.serving ...`` is ``mlkit serve ...`` (used by :func:`mlkit.serving.running`)."""

import sys

from mlkit.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
