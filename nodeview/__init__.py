"""NodeView: a desktop lung-CT viewer with a research lung-nodule detector.

Research use only. NodeView is not a medical device and its findings are not a diagnosis.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = "Research use only - not a medical device, not a diagnosis."
