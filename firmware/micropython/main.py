# otter bootstrap — copy to the board as /main.py once, and never push over it (otter.json "protect" keeps it).
#
# On every boot it:
#   1. connects to Wi-Fi if otter.json has "wifi": {"ssid": ..., "password": ...} (unless boot.py already did);
#   2. finishes or rolls back an application update: a push with the reboot flag left ROOT/.otter/pending (and
#      the replaced file in ROOT/.otter/backup/). The trial imports the otter package and the application module
#      (otter.json "app", default "app"); if either raises, or a previous trial boot died before getting that far,
#      the previous version is put back and the board resets;
#   3. confirms a new firmware image (esp32.Partition.mark_app_valid_cancel_rollback) once the trial passed;
#   4. runs your application and the otter receiver: an `async def main()` in the app runs beside otter.start();
#      otherwise (no main, or a plain function that returns) the blocking otter receiver serves after it.
# This file itself only uses os/sys/json/machine, so that a broken push of the otter package is rolled back too.
import os
import sys

try:
    import json
except ImportError:
    import ujson as json


def _join(root, rel):
    return ("/" + rel) if root == "/" else (root.rstrip("/") + "/" + rel)


def _read_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def _write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(obj))
    os.rename(path + ".tmp", path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _print_exc(e):
    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        pe(e)
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)


def _reset():
    import machine

    machine.reset()


def rollback(root, pending):
    """Puts back the version a rebooting push replaced (or removes the file it created)."""
    target = _join(root, pending["name"])
    backup = pending.get("backup") or ""
    if backup:
        try:
            os.rename(_join(root, backup), target)
        except OSError:
            # The backup was already moved back by an interrupted rollback: nothing else to restore.
            pass
    else:
        _remove(target)
    _remove(_join(root, ".otter/pending"))
    print("otter: rolled back %s" % pending["name"])


def _confirm_firmware(root):
    marker = _join(root, ".otter/fw_pending")
    if not _exists(marker):
        return
    try:
        import esp32

        esp32.Partition.mark_app_valid_cancel_rollback()
    except Exception as e:  # no rollback support in the bootloader: nothing to confirm
        print("otter: firmware confirm: %r" % (e,))
    _remove(marker)
    print("otter: new firmware confirmed")


def _wifi(cfg):
    w = cfg.get("wifi")
    if not w:
        return
    try:
        import network
        import time

        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        if not sta.isconnected():
            sta.connect(w["ssid"], w.get("password", ""))
            for _ in range(100):
                if sta.isconnected():
                    break
                time.sleep_ms(100)
        print("otter: wifi", sta.ifconfig()[0] if sta.isconnected() else "not connected")
    except Exception as e:
        print("otter: wifi: %r" % (e,))


def boot(root="/", reset=None, start=True):
    """Runs the boot sequence; returns "rolled-back", "confirmed", "ok" or "app-failed" when start=False (tests)."""
    reset = reset or _reset
    cfg = _read_json(_join(root, "otter.json")) or {}
    app_name = cfg.get("app", "app")
    pending_path = _join(root, ".otter/pending")
    pending = _read_json(pending_path)
    if pending is not None:
        if pending.get("tries", 0) >= 1:
            # The previous trial boot of this update never confirmed it (hang, crash, reset): roll back.
            rollback(root, pending)
            reset()
            return "rolled-back"
        pending["tries"] = pending.get("tries", 0) + 1
        _write_json(pending_path, pending)

    if start:
        _wifi(cfg)
    app = None
    status = "ok"
    try:
        # The receiver is part of the trial too: a broken push of otter itself is rolled back like the app.
        for m in list(sys.modules):
            if m == app_name or m == "otter" or m.startswith("otter."):
                del sys.modules[m]
        __import__("otter")
        app = __import__(app_name)
    except Exception as e:
        print("otter: application %s failed to start:" % app_name)
        _print_exc(e)
        if pending is not None:
            rollback(root, pending)
            reset()
            return "rolled-back"
        status = "app-failed"  # no backup to return to: keep the receiver up so that a fix can be pushed
    else:
        if pending is not None:
            _remove(pending_path)
            print("otter: update of %s confirmed" % pending["name"])
            status = "confirmed"
    _confirm_firmware(root)
    if not start:
        return status
    _run(app, cfg, root)
    return status


def _run(app, cfg, root):
    import otter

    kw = otter.config_kwargs(cfg, root)
    if "protect" not in kw:
        kw["protect"] = ("main.py", "boot.py")
    main = getattr(app, "main", None) if app is not None else None
    co = main() if main is not None else None
    if co is not None and hasattr(co, "send"):  # async def main(): run beside the receiver
        try:
            import asyncio
        except ImportError:
            import uasyncio as asyncio

        async def both():
            task = otter.start(**kw)
            await co
            await task  # the application returned: keep serving

        asyncio.run(both())
    else:
        otter.serve(**kw)


if __name__ == "__main__":
    boot()
