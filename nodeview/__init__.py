"""NodeView: a desktop lung-CT viewer with a research lung-nodule detector.

Research use only. NodeView is not a medical device and its findings are not a diagnosis.
"""

import os as _os

# onnxruntime writes a telemetry store (~/.cache/Microsoft/DeveloperTools/.onnxruntime) as soon as
# it is imported unless this is set first; NodeView sends and stores nothing of the kind.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

RESEARCH_NOTICE = "Research use only - not a medical device, not a diagnosis."
