"""Disks that fail, for the tests: real file systems, mounted for one test.

- `small_tmpfs`: a tmpfs of a few hundred KiB; `fill` writes a file until it is full (ENOSPC).
- `failing_ext4`: ext4 on a loop device, mounted with errors=remount-ro; `make_read_only` makes
  the kernel remount it read-only in an emergency (as it does when a USB stick errs), open files
  and all (a plain `mount -o remount,ro` is refused while a file is open for writing).
- `slow_write_library`: an LD_PRELOAD library (compiled here with the C compiler) that holds up
  every write(2) to a regular file under $SLOW_WRITE_DIR: by $SLOW_WRITE_MS ms each, and for as
  long as the file $SLOW_WRITE_GATE exists. It stands in for a slow disk (a USB stick under
  write-back) and a hung one, in a real process that knows nothing of it.

Each mount needs root (or CAP_SYS_ADMIN); without it the test is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def _mounted(path: Path, what: str, *mount: str) -> Iterator[Path]:
    """`mount ... path` (made if missing) for the `with` block; the test skipped if refused."""
    path.mkdir(parents=True, exist_ok=True)
    done = _run("mount", *mount, str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount {what} (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))  # a file still open (a killed agent): detach it


def small_tmpfs(path: Path, size_kib: int) -> contextlib.AbstractContextManager[Path]:
    """A tmpfs of `size_kib` KiB mounted at `path` for the `with` block."""
    return _mounted(path, "a tmpfs", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs")


def fill(folder: Path, name: str = "filler") -> Path:
    """Write folder/name until the file system is full; returns the file."""
    filler = folder / name
    block = b"\0" * 4096
    with filler.open("ab", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    # What is left is less than a block: take that too, a byte at a time.
    with filler.open("ab", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0")
    return filler


def failing_ext4(path: Path, image: Path,
                 size_mib: int = 16) -> contextlib.AbstractContextManager[Path]:
    """ext4 in `image`, on a loop device at `path`, mounted errors=remount-ro."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("needs mkfs.ext4 (e2fsprogs)")
    with image.open("wb") as f:
        f.truncate(size_mib * 2**20)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    assert made.returncode == 0, made.stderr
    return _mounted(path, "a loop device", "-o", "loop,errors=remount-ro", str(image))


def make_read_only(path: Path) -> None:
    """The kernel's emergency read-only remount of the ext4 mounted at `path`."""
    device = next(line.split()[0] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1] == str(path))
    trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip(f"this kernel has no {trigger}")
    trigger.write_text("1")
    options = next(line.split()[3] for line in Path("/proc/mounts").read_text().splitlines()
                   if line.split()[1] == str(path))
    assert "ro" in options.split(",") or "emergency_ro" in options, options


SLOW_WRITE_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);

static void hold(int fd) {
    const char *dir = getenv("SLOW_WRITE_DIR");
    struct stat st;
    if (!dir || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) return;
    target[n] = 0;
    if (strncmp(target, dir, strlen(dir)) != 0) return;
    const char *ms = getenv("SLOW_WRITE_MS");
    if (ms) usleep(1000 * atoi(ms));
    const char *gate = getenv("SLOW_WRITE_GATE");
    while (gate && access(gate, F_OK) == 0) usleep(10000);
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (!real_write) real_write = dlsym(RTLD_NEXT, "write");
    hold(fd);
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    if (!real_pwrite) real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    hold(fd);
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    return pwrite(fd, buf, count, offset);
}
"""


def slow_write_library(folder: Path) -> Path:
    """The LD_PRELOAD library (see the module's doc), built in `folder`."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler for the slow-disk library")
    source, library = folder / "slow_write.c", folder / "slow_write.so"
    source.write_text(SLOW_WRITE_C)
    built = _run(cc, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl")
    assert built.returncode == 0, built.stderr
    return library
