#!/usr/bin/env python3
"""uevent.py — send one kernel-format uevent on NETLINK_KOBJECT_UEVENT multicast group 1 (tests only).

    python3 test/sim/uevent.py [--uid UID] ACTION DEVPATH SLOT [DRIVER]

The message is what the kernel's driver core sends for a PCI function:
    "ACTION@DEVPATH\\0ACTION=..\\0DEVPATH=..\\0SUBSYSTEM=pci\\0[DRIVER=..\\0]PCI_SLOT_NAME=..\\0SEQNUM=..\\0"
--uid sends SCM_CREDENTIALS claiming another uid (needs CAP_SETUID), to test that receivers ignore non-root
senders. Refuses to run unless the current network namespace has no interface other than lo, so a test can
never reach the host's udev (run it under `unshare -n` or inside a test that unshared CLONE_NEWNET).
Stdlib only. Exit 0 sent, 1 failure, 2 usage / refused.
"""
import os
import socket
import struct
import sys
import time

NETLINK_KOBJECT_UEVENT = 15
ACTIONS = ("add", "remove", "bind", "unbind", "change", "move", "online", "offline")


def private_netns():
    names = [name for _, name in socket.if_nameindex()]
    return all(n == "lo" for n in names), names


def build(action, devpath, slot, driver=None, seqnum=None):
    if seqnum is None:
        seqnum = time.monotonic_ns() & 0x7FFFFFFF
    fields = [f"ACTION={action}", f"DEVPATH={devpath}", "SUBSYSTEM=pci"]
    if driver:
        fields.append(f"DRIVER={driver}")
    fields += [f"PCI_SLOT_NAME={slot}", f"SEQNUM={seqnum}"]
    return (f"{action}@{devpath}\0" + "".join(f + "\0" for f in fields)).encode()


def send(msg, uid=None):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    try:
        s.bind((0, 0))
        anc = []
        if uid is not None:
            anc = [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iII", os.getpid(), uid, uid))]
        s.sendmsg([msg], anc, 0, (0, 1))
    finally:
        s.close()


def main(argv):
    args = argv[1:]
    uid = None
    if len(args) >= 2 and args[0] == "--uid":
        try:
            uid = int(args[1])
        except ValueError:
            print("uevent.py: --uid wants a number", file=sys.stderr)
            return 2
        args = args[2:]
    if len(args) not in (3, 4) or args[0] not in ACTIONS or not args[1].startswith("/"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    ok, names = private_netns()
    if not ok:
        print("uevent.py: refusing to run: this network namespace has interfaces other than lo (%s); "
              "run it in a private one (unshare -n)" % ", ".join(names), file=sys.stderr)
        return 2
    try:
        send(build(args[0], args[1], args[2], args[3] if len(args) == 4 else None), uid)
    except OSError as e:
        print(f"uevent.py: send: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
