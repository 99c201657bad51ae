"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class RtmwEdgeError(Exception):
    """A problem the user can fix (bad input, missing file, missing extra). Never a bug."""


class MissingExtraError(RtmwEdgeError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'rtmw-edge[{extra}]'")


def require(module: str, extra: str):
    """Import an optional dependency or raise MissingExtraError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra) from exc
