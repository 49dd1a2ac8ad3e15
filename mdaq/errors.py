"""Errors that name the file, the record and the field, so bad input is fixable from the message alone."""

from __future__ import annotations


class DataError(ValueError):
    """Invalid input data.

    Parameters
    ----------
    path : str
        The file (or dataset name) being read.
    message : str
        What is wrong.
    record : int | str | None
        Record index (0-based) or id, when the problem is in one record.
    field : str | None
        Field name, when the problem is in one field.
    """

    def __init__(self, path: object, message: str, record: int | str | None = None, field: str | None = None):
        self.path, self.record, self.field, self.message = str(path), record, field, message
        where = self.path
        if record is not None:
            where += f", record {record}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


class ChecksumError(DataError):
    """A file's sha256 does not match the pinned value."""


class MissingAssetError(FileNotFoundError):
    """A model folder that the pipeline needs has not been built; the message says which command builds it."""


def one_line(e: BaseException) -> str:
    """The exception's message on one line (a KeyError's without the quotes ``str`` adds): what the command line
    prints after ``error:``."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or type(e).__name__
