"""How a library's failure becomes one line: the quoted part of its message, and the environment faults
(full or read-only disk, refused write) recognised anywhere in an exception's chain."""

import errno
import logging

from pipeline_cli.runtime import _OneLine
from pipeline_core.errors import StorageError, environment_fault, first_line


def test_first_line_quotes_the_start_of_a_long_message():
    exc = RuntimeError("  schema mismatch at row 7\nTraceback of the driver\n  more\n")
    assert first_line(exc) == "schema mismatch at row 7"
    assert first_line(ValueError("x" * 500), 160) == "x" * 160


def test_first_line_names_the_type_when_the_message_is_empty():
    # botocore and some Rust bindings raise with no message: the error must still say something
    assert first_line(ConnectionResetError()) == "ConnectionResetError"
    assert first_line(OSError("  \n ")) == "OSError"


def test_environment_fault_finds_a_full_disk_in_the_chain_and_names_the_file():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/store/silver/part-0.parquet")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as exc:
        fault = environment_fault(exc)
    assert isinstance(fault, StorageError)
    assert str(fault).startswith("/data/store/silver/part-0.parquet: no space left on the device; free space")


def test_environment_fault_reads_the_words_of_a_rust_writer():
    fault = environment_fault(RuntimeError("Generic error: Permission denied (os error 13)"))
    assert fault is not None and "permission denied; make store.root" in str(fault)
    assert environment_fault(ValueError("column 'x' not found")) is None


def test_console_filter_keeps_one_line_even_for_an_empty_message_with_a_traceback():
    try:
        raise KeyError("boom")
    except KeyError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "", None, sys.exc_info())
    assert _OneLine().filter(record) is True
    assert record.getMessage() == "" and record.exc_info is None
    multi = logging.LogRecord("x", logging.WARNING, __file__, 1, "first %s\nsecond", ("line",), None)
    _OneLine().filter(multi)
    assert multi.getMessage() == "first line"
