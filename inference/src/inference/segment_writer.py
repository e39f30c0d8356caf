"""The prediction log's files: one worker's segments, appended to in a thread, closed by rename.

Names, line format and the reader are `shared_schema.prediction_log`'s; this module only
writes. A write error (a full disk, an unwritable directory) is returned, never raised, and
never leaves half a line behind, so readers see whole records only.
"""

import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from shared_schema.prediction_log import OPEN_SUFFIX, segment_name


class SegmentWriter:
    """Appends log lines to one worker's segments; runs in a thread, one call at a time.

    A segment is written as `<name>.open` (created exclusively, so nothing else's file is ever
    appended to) and closed by size or age: synced, made read-only, renamed to `<name>`. A
    closed segment is never opened again.
    """

    def __init__(self, directory: Path, worker: str, *, max_bytes: int, max_age_s: float) -> None:
        self.directory = directory
        self.worker = worker
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._sequence = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened = 0.0

    def due(self) -> bool:
        """Whether the open segment is full or old enough to close."""
        if self._fd is None:
            return False
        age = time.monotonic() - self._opened
        return self._size >= self._max_bytes or age >= self._max_age_s

    def write(self, data: bytes) -> tuple[int, OSError | None]:
        """Append whole lines, opening and closing segments as sizes and ages require.

        Args:
            data: Log lines, each ended by a newline.

        Returns:
            How many lines were written, and the error that stopped the rest (then those are
            not in any segment: a line cut by the error is truncated away).
        """
        written = 0
        position = 0
        view = memoryview(data)
        try:
            while position < len(data):
                if self.due():
                    self.close()
                if self._fd is None:
                    self._open()
                # The whole lines that still fit; at least one line in an empty segment.
                end = data.rfind(b"\n", position, position + self._max_bytes - self._size) + 1
                if end <= position:
                    if self._size:
                        self.close()
                        continue
                    end = data.index(b"\n", position) + 1
                kept, error = self._append(view[position:end])
                written += data.count(b"\n", position, position + kept)
                if error is not None:
                    raise error
                position = end
            self._sync()
        except OSError as error:
            return written, error
        return written, None

    def close(self) -> None:
        """Close the open segment, if any: sync, make read-only, rename to its closed name.

        Raises:
            OSError: The rename failed; the segment stays `.open` and is not written again.
        """
        fd, path = self._fd, self._path
        if fd is None or path is None:
            return
        self._fd = self._path = None
        try:
            self._sync(fd)
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        path.rename(path.with_name(path.name.removesuffix(OPEN_SUFFIX)))

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = segment_name(datetime.now(UTC), self.worker, self._sequence) + OPEN_SUFFIX
        path = self.directory / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o644)
        self._path = path
        self._size = 0
        self._opened = time.monotonic()

    def _append(self, chunk: memoryview) -> tuple[int, OSError | None]:
        """Write whole lines; on an error keep those written in full and cut off the rest.

        Returns:
            The bytes kept (whole lines), and the error that stopped the write.
        """
        assert self._fd is not None
        done = 0
        try:
            while done < len(chunk):
                done += os.write(self._fd, chunk[done:])
        except OSError as error:
            kept = bytes(chunk[:done]).rfind(b"\n") + 1
            if kept < done:
                try:  # cut the partial line off, so the segment still ends on a whole line
                    os.ftruncate(self._fd, self._size + kept)
                except OSError:
                    self._abandon()
            self._size += kept
            return kept, error
        self._size += done
        return done, None

    def _abandon(self) -> None:
        # A segment that may end mid-line is closed as it is (readers count the cut line); the
        # next write starts a new segment.
        with contextlib.suppress(OSError):
            self.close()
        self._fd = self._path = None

    def _sync(self, fd: int | None = None) -> None:
        # Bounds what a host crash loses to the last flush: a process crash loses nothing
        # written, the kernel has it.
        fd = self._fd if fd is None else fd
        if fd is not None:
            os.fdatasync(fd)
