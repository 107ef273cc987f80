# otter storage on the device's file system (LittleFS / FAT on a board, any directory on a host), plus firmware
# images written to the next OTA partition (esp32.Partition or a shim with the same methods).
#
# Layout under the root (the same as the C++ POSIX port, core/ports/posix):
#   ROOT/<name>                    committed files (the only place targets appear)
#   ROOT/.otter/part/<H>.part      partial copy of an interrupted or running transfer, H = hex SHA-256 of the name
#   ROOT/.otter/part/<H>.meta      "size sha256hex\n" of that partial copy (resume is keyed by name, size, sha256)
#   ROOT/.otter/part/firmware.meta "size sha256hex held label\n" of a firmware image being written
#   ROOT/.otter/backup/<H>         previous version of a file replaced by a push with the reboot flag
#   ROOT/.otter/pending            {"name", "backup", "tries"}: the bootstrap (main.py) confirms or rolls back
#   ROOT/.otter/fw_pending         a new firmware image was selected for boot and is not confirmed yet
# Commit = flush/close the partial copy, create parents, rename it over the target (atomic on LittleFS and POSIX).
import os

from .proto import BAD_NAME, BUSY, KIND_FIRMWARE, NO_SPACE, STORAGE, UNSUPPORTED_KIND, StoreError, hexstr, sha256

try:
    import json
except ImportError:
    import ujson as json

_ENOSPC = 28
_ENOENT = 2


def _stat(p):
    try:
        return os.stat(p)
    except OSError:
        return None


def _isdir(st):
    return st is not None and (st[0] & 0x4000) != 0


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _errno(e):
    return e.args[0] if e.args else 0


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(obj))
    os.rename(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


class Store:
    """One transfer at a time (the device serves one session at a time). `mv` is the device's shared buffer."""

    def __init__(self, root, mv, reserve=0, partition=None, backup=True):
        root = root or "."
        if len(root) > 1 and root[-1] == "/":
            root = root.rstrip("/") or "/"
        self.root = root
        self.mv = mv
        self.reserve = reserve
        self.partition = partition
        self.backup = backup
        self.busy = set()  # names with a transfer in progress
        self._f = None  # open partial copy (kind file)
        self._fw = False  # the open transfer is a firmware image
        self._name = None

    # --- paths ------------------------------------------------------------------------------------------------

    def path(self, rel):
        if self.root == "/":
            return "/" + rel
        return self.root + "/" + rel

    def _mkdirs(self, rel):
        """Creates ROOT/rel and its parents; StoreError if a component exists and is not a directory."""
        p = self.root
        for seg in rel.split("/"):
            p = p + seg if p.endswith("/") else p + "/" + seg
            st = _stat(p)
            if st is None:
                try:
                    os.mkdir(p)
                except OSError as e:
                    if _errno(e) == _ENOSPC:
                        raise StoreError(NO_SPACE, "no space to create a directory")
                    if not _isdir(_stat(p)):
                        raise StoreError(STORAGE, "cannot create a parent directory of the name")
            elif not _isdir(st):
                raise StoreError(BAD_NAME, "a parent of the name is not a directory on the device")

    def _hidden(self, sub):
        self._mkdirs(".otter/" + sub)
        return self.path(".otter/" + sub)

    @staticmethod
    def _key(name):
        return hexstr(sha256(name.encode()).digest())

    # --- space ------------------------------------------------------------------------------------------------

    def free(self, kind=0):
        if kind == KIND_FIRMWARE and self.partition is not None:
            return self._fw_capacity()
        try:
            st = os.statvfs(self.root)
            n = st[0 if st[1] == 0 else 1] * st[4] - self.reserve
        except (OSError, AttributeError):
            return 0x7FFFFFFFFFFFFFFF
        return n if n > 0 else 0

    # --- transfers ------------------------------------------------------------------------------------------

    def chunk(self, left):
        """Where the next DATA bytes go: the shared buffer (files) or the rest of the current flash block."""
        mv = self.mv
        if self._fw:
            fill = self._fill
            n = len(mv) - fill
            return mv[fill : fill + (left if left < n else n)]
        return mv[: left if left < len(mv) else len(mv)]

    def begin(self, name, kind, size, sha, hasher):
        """Opens the transfer; returns the bytes already held for exactly (name, size, sha) after feeding them to
        `hasher`; any other partial copy of the name is discarded."""
        if name in self.busy:
            raise StoreError(BUSY, "this name is being received on another connection")
        if kind == KIND_FIRMWARE:
            held = self._fw_begin(size, sha, hasher)
        else:
            held = self._file_begin(name, size, sha, hasher)
        self.busy.add(name)
        self._name = name
        return held

    def _file_begin(self, name, size, sha, hasher):
        # Refuse early what commit could not do (the core creates parents only at commit).
        segs = name.split("/")
        p = self.root
        for seg in segs[:-1]:
            p = p + seg if p.endswith("/") else p + "/" + seg
            st = _stat(p)
            if st is None:
                break
            if not _isdir(st):
                raise StoreError(BAD_NAME, "a parent of the name is not a directory on the device")
        else:
            if _isdir(_stat(self.path(name))):
                raise StoreError(BAD_NAME, "the target is a directory on the device")
        try:
            pdir = self._hidden("part")
        except StoreError as e:
            raise StoreError(NO_SPACE if e.code == NO_SPACE else STORAGE, "cannot create the partial-copy directory")
        base = pdir + "/" + self._key(name)
        self._part = base + ".part"
        self._meta = base + ".meta"
        meta = "%d %s\n" % (size, hexstr(sha))
        held = 0
        st = _stat(self._part)
        old = None
        try:
            with open(self._meta) as f:
                old = f.read()
        except OSError:
            pass
        if old == meta and st is not None and not _isdir(st) and st[6] <= size:
            held = st[6]
            try:
                self._rehash(self._part, held, hasher)
            except OSError:
                # The hasher has seen part of it and cannot be reset: drop the copy, fail this attempt.
                _remove(self._part)
                _remove(self._meta)
                raise StoreError(STORAGE, "cannot read the partial copy (discarded; push again)")
        if held == 0:
            _remove(self._part)
            try:
                with open(self._meta, "w") as f:
                    f.write(meta)
            except OSError as e:
                raise StoreError(NO_SPACE if _errno(e) == _ENOSPC else STORAGE, "cannot create the partial copy")
        try:
            self._f = open(self._part, "ab")
        except OSError as e:
            raise StoreError(NO_SPACE if _errno(e) == _ENOSPC else STORAGE, "cannot create the partial copy")
        self._fw = False
        return held

    def _rehash(self, path, n, hasher):
        mv = self.mv
        with open(path, "rb") as f:
            while n > 0:
                k = f.readinto(mv if n >= len(mv) else mv[:n])
                if not k:
                    raise OSError(_ENOENT)
                hasher.update(mv[:k])
                n -= k

    def write(self, n):
        """Stores the n bytes the session received into the last chunk() view."""
        if self._fw:
            self._fw_write(n)
            return
        try:
            k = self._f.write(self.mv[:n])
        except OSError as e:
            if _errno(e) == _ENOSPC:
                raise StoreError(NO_SPACE, "the device ran out of space")
            raise StoreError(STORAGE, "cannot write the partial copy")
        if k is not None and k != n:
            raise StoreError(NO_SPACE, "the device ran out of space")

    def _sync_close(self):
        f = self._f
        self._f = None
        if f is None:
            return
        try:
            f.flush()
            if hasattr(os, "fsync"):
                os.fsync(f.fileno())
        finally:
            f.close()

    def commit(self, reboot=False):
        """All bytes are in and verified: make them durable and replace the target atomically."""
        name = self._name
        try:
            if self._fw:
                self._fw_commit()
                return
            try:
                self._sync_close()
            except OSError as e:
                _remove(self._part)
                _remove(self._meta)
                raise StoreError(NO_SPACE if _errno(e) == _ENOSPC else STORAGE, "cannot sync the partial copy")
            if "/" in name:
                self._mkdirs(name[: name.rfind("/")])
            target = self.path(name)
            pending = None
            if reboot and self.backup:
                pending = self._save_backup(name, target)
            try:
                try:
                    os.rename(self._part, target)
                except OSError:
                    # FAT cannot rename over an existing file: fall back (not atomic there).
                    if _stat(target) is None or _isdir(_stat(target)):
                        raise
                    os.remove(target)
                    os.rename(self._part, target)
            except OSError:
                if pending:
                    _remove(pending)
                # The verified partial copy stays: an identical PUSH resumes at offset == size and commits.
                raise StoreError(STORAGE, "cannot rename the partial copy into place")
            _remove(self._meta)
        finally:
            self._unlock()

    def _save_backup(self, name, target):
        """Keeps the file a rebooting push replaces, for the bootstrap's rollback. Returns the marker's path."""
        try:
            self._hidden("backup")
            backup = ""
            if _stat(target) is not None:
                backup = ".otter/backup/" + self._key(name)
                dst = self.path(backup)
                mv = self.mv
                with open(target, "rb") as src:
                    with open(dst + ".tmp", "wb") as out:
                        while True:
                            k = src.readinto(mv)
                            if not k:
                                break
                            out.write(mv[:k])
                os.rename(dst + ".tmp", dst)
            marker = self.path(".otter/pending")
            write_json(marker, {"name": name, "backup": backup, "tries": 0})
            return marker
        except OSError as e:
            raise StoreError(NO_SPACE if _errno(e) == _ENOSPC else STORAGE, "cannot keep a backup of the target")

    def suspend(self):
        """Interrupted: keep the partial copy (durable) for a later resume."""
        try:
            if self._fw:
                self._fw_suspend()
            else:
                self._sync_close()
        finally:
            self._unlock()

    def discard(self):
        """Failed for good: delete the partial copy."""
        try:
            if self._fw:
                _remove(self._fw_meta)
            else:
                try:
                    self._sync_close()
                except OSError:
                    pass
                _remove(self._part)
                _remove(self._meta)
        finally:
            self._unlock()

    def _unlock(self):
        if self._name is not None:
            self.busy.discard(self._name)
        self._name = None
        self._fw = False

    def stat(self, name, hasher):
        """(exists, size, sha256 digest) of ROOT/name; a directory or an absent file does not exist."""
        p = self.path(name)
        st = _stat(p)
        if st is None or _isdir(st):
            return False, 0, None
        size = 0
        mv = self.mv
        try:
            with open(p, "rb") as f:
                while True:
                    k = f.readinto(mv)
                    if not k:
                        break
                    hasher.update(mv[:k])
                    size += k
        except OSError:
            raise StoreError(STORAGE, "cannot read the file")
        return True, size, hasher.digest()

    # --- firmware (esp32.Partition protocol: readblocks / writeblocks / ioctl / set_boot) -----------------------

    def _fw_capacity(self):
        p = self.partition
        return p.ioctl(4, 0) * p.ioctl(5, 0)

    def _fw_label(self):
        try:
            return str(self.partition.info()[4])
        except Exception:
            return "-"

    def _fw_begin(self, size, sha, hasher):
        p = self.partition
        if p is None:
            raise StoreError(UNSUPPORTED_KIND, "this device does not accept that kind")
        bs = len(self.mv)  # the Device sizes its buffer to the partition's block size
        if size > self._fw_capacity():
            raise StoreError(NO_SPACE, "firmware is larger than the update partition")
        try:
            pdir = self._hidden("part")
        except StoreError:
            raise StoreError(STORAGE, "cannot create the partial-copy directory")
        self._fw_meta = pdir + "/firmware.meta"
        key = "%d %s" % (size, hexstr(sha))
        label = self._fw_label()
        held = 0
        try:
            with open(self._fw_meta) as f:
                old = f.read().split()
            if len(old) == 4 and "%s %s" % (old[0], old[1]) == key and old[3] == label:
                held = int(old[2])
        except (OSError, ValueError):
            held = 0
        if held % bs or held > size:
            held = 0
        blk = 0
        while blk * bs < held:
            p.readblocks(blk, self.mv)
            n = held - blk * bs
            hasher.update(self.mv if n >= bs else self.mv[:n])
            blk += 1
        try:
            with open(self._fw_meta, "w") as f:
                f.write("%s %d %s\n" % (key, held, label))
        except OSError:
            raise StoreError(STORAGE, "cannot record the firmware transfer")
        self._fw_key = key
        self._fw_label_s = label
        self._blk = held // bs
        self._fill = 0
        self._fw = True
        return held

    def _fw_write(self, n):
        self._fill += n
        if self._fill == len(self.mv):
            try:
                self.partition.writeblocks(self._blk, self.mv)
            except OSError:
                raise StoreError(STORAGE, "cannot write the firmware partition")
            self._blk += 1
            self._fill = 0

    def _fw_commit(self):
        p = self.partition
        try:
            if self._fill:
                buf = self.mv
                for i in range(self._fill, len(buf)):
                    buf[i] = 0xFF  # erased flash
                p.writeblocks(self._blk, buf)
                self._fill = 0
        except OSError:
            _remove(self._fw_meta)
            raise StoreError(STORAGE, "cannot write the firmware partition")
        try:
            p.set_boot()
        except OSError:
            _remove(self._fw_meta)
            raise StoreError(STORAGE, "cannot select the new image for boot (is it a valid image?)")
        _remove(self._fw_meta)
        try:
            with open(self.path(".otter/fw_pending"), "w") as f:
                f.write(self._fw_label_s + "\n")
        except OSError:
            pass

    def _fw_suspend(self):
        held = self._blk * len(self.mv)
        try:
            with open(self._fw_meta, "w") as f:
                f.write("%s %d %s\n" % (self._fw_key, held, self._fw_label_s))
        except OSError:
            _remove(self._fw_meta)
