"""Entry point of the frozen app (PyInstaller): the same as the ``nodeview`` console script."""

import multiprocessing
import sys

from nodeview.__main__ import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
