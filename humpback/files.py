"""Reading inputs wherever they are: a local path, a file: URI, or a cluster URI (s3a://, hdfs://, ...)."""
from __future__ import annotations


def open_input(uri: str):
    """A binary, seekable stream for a local path or a cluster URI (fsspec handles the remote schemes)."""
    if uri.startswith("file:"):
        return open(uri.removeprefix("file:").replace("///", "/", 1) if uri.startswith("file:///") else uri[5:], "rb")
    if "://" not in uri:
        return open(uri, "rb")
    import fsspec

    return fsspec.open(uri, "rb").open()
