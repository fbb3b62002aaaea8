"""NodeView's exceptions: every failure a user can meet is one of these, with a message a
radiologist understands. Messages never contain patient names or IDs."""

from __future__ import annotations


class NodeViewError(Exception):
    """Base class. ``str(err)`` is a one-line message fit for a dialog or the CLI."""


class InputError(NodeViewError):
    """The input cannot be used: missing path, no images, unreadable or broken files."""


class NoImagesError(InputError):
    """A folder or file list holds no usable DICOM/CT images."""


class UnreadableFileError(InputError):
    """One file cannot be read (truncated, not DICOM, unsupported encoding)."""


class UnsupportedDataError(InputError):
    """The data are readable but not a grey-scale image volume NodeView can show (e.g. colour, SEG)."""


class GeometryError(InputError):
    """The images do not form a volume (e.g. every slice at the same position)."""


class Cancelled(NodeViewError):
    """The user cancelled a long operation. Not a failure; callers usually ignore it."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)
