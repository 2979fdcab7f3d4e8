#!/usr/bin/env python3
"""simkernel.py — a simulated kernel for a fixture node built by hack/simnode.py.

Usage:
    python3 test/sim/simkernel.py ROOT [--faults FILE] [--no-uevents]

It watches the fixture (inotify, no polling) and applies the PCI core's semantics to what a program writes:
  <dev>/driver_override          the value stays as the attribute; "" or "\\n" clears it (reads "(null)")
  sys/bus/pci/drivers/<d>/unbind  the device leaves <d>: driver link and drivers/<d>/<addr> removed; the last
                                  function of a group to leave vfio-pci removes dev/vfio/<g>
  sys/bus/pci/drivers_probe       an unbound device binds to its driver_override (only that driver, only if its
                                  directory exists), else to its natural driver (spec "naturalDriver")
  sys/bus/pci/drivers/<d>/bind    binds to <d> when driver_override allows it (unset, or equal to <d>)
  proc/driver/nvidia/gpus/<a>/unbindLock   "1": reads back 1 unless a process holds /dev/nvidia<minor>
                                  (matched by st_rdev in proc/<pid>/fd) or the fault refuses it; then 0
Binding to vfio-pci creates dev/vfio/<g> (char <vfioGroupMajor>:<g>) and, on iommufd nodes, <dev>/vfio-dev/vfioN
and dev/vfio/devices/vfioN. Leaving nvidia removes proc/driver/nvidia/gpus/<a>; binding to nvidia restores it.
Writes are read as the kernel reads them: the first line, stripped (a writer using O_WRONLY without O_TRUNC
leaves the old tail behind); attributes that can be read are then replaced (rename) by their canonical value.
The nvidia unbind lock reads " 1" or " 0" (a leading blank): a writer's "1" over it reads "10"/"11" until the sim
has answered, so a reader that waits for a bare digit never takes its own write for the answer.

Every write seen is appended to ROOT/.sim/writes.log as "<path relative to ROOT> <value>" ("(empty)" for an
empty value), device attributes under their sys/bus/pci/devices/<addr>/ name. ROOT/.sim/ready appears once the
watches are in place. Writing a file ROOT/.sim/sync-NAME makes the sim answer with ROOT/.sim/synced-NAME after
every earlier event was handled (tests use it before counting writes).

Kernel-style uevents (bind, unbind, remove) go to NETLINK_KOBJECT_UEVENT multicast group 1, only when the
network namespace has no interface besides lo (run under `unshare -n`), so nothing ever reaches the host's
udev; elsewhere the sim refuses to start unless --no-uevents.

Faults (ROOT/.sim/faults.json, re-read whenever it changes, or --faults FILE, which is copied there):
  {"refuseBind": [addr],       vfio-pci's probe of addr fails: drivers_probe/bind "succeed", nothing binds
   "blockUnbind": [addr],      the unbind of addr hangs: drivers/<d>/unbind becomes a FIFO without a reader when
                               the plugin takes addr's unbind lock (or writes its driver_override), so the
                               writer's open() blocks; the device stays on its driver. The unbind lock of another
                               device of that driver turns the FIFO back into a file (a writer waits for the lock's
                               answer, so this is ordered with its unbind). The hung unbind holds the device lock,
                               as on a real kernel: once the plugin set the device's driver_override (its unbind comes
                               next), its driver_override and sriov_numvfs, whose reads and writes take that lock,
                               become FIFOs too: a reader or writer of them hangs like the unbind, until the fault
                               is lifted for that device (the unbind FIFO itself goes when another device's unbind
                               lock is taken, as above; the device lock stays)
                               The FIFO stands for the driver's whole unbind file (the sim cannot tell which device
                               a writer blocked in open() wants): while it is armed, every unbind of that driver
                               hangs. A test that runs other groups at once (the parallel engine) gives the blocked
                               GPU a driver of its own, or runs the engine with --parallel 1. A device on a driver
                               without an unbind lock (not nvidia) has its driver's unbind FIFO armed as soon as the
                               fault names it
   "vanish": [addr],           the device falls off the bus now: unbind + remove uevents, dir and links gone
   "vanishOnUnbind": [addr],   the device falls off the bus when its unbind is written
   "failVfioNode": [group],    binding to vfio-pci does not create dev/vfio/<group>
   "refuseUnbindLock": [addr], the nvidia unbind lock of addr reads back 0
   "deviceLocked": [addr],     someone else (another tool's hung unbind) holds addr's device lock now: its
                               driver_override and sriov_numvfs become FIFOs (a reader hangs) until lifted
   "probeNoop": true,          drivers_probe binds nothing at all
   "latencyMs": {"unbind": 500, "probe": 200, "bind": 0},
                               each such operation takes that long before it shows, per device as in the driver
                               core (which locks per device): one device's unbind never waits for another's, the
                               operations of one device stay in order (a thread per device with work pending);
                               a sync is answered once every pending operation is done
   "killAfterWrites": N}       SIGKILL the process in ROOT/.sim/victim.pid once N more writes were seen (tests
                               of crash safety: the victim dies between two of its writes)
SIGTERM/SIGINT: clean exit (the FIFOs are turned back into files).

The write-only files every device shares (sys/bus/pci/drivers_probe, drivers/<d>/{bind,unbind,new_id,remove_id})
are FIFOs the sim keeps open for reading while it runs: each write(2) is one message, read in order, so writers
of different devices at once (the parallel engine) never overwrite each other's value before the sim read it, as
a regular file would. A value is read as the kernel reads it: each PCI address in it is one store (a writer without
a newline between two writes gives "0000:61:00.00000:63:00.0"); anything else is one value per line.
"""
import argparse
import ctypes
import ctypes.util
import errno
import json
import os
import re
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
NETLINK_KOBJECT_UEVENT = 15
NVIDIA_MAJOR = 195
NULL = "(null)"
# The unbind lock reads " 1" / " 0": the kernel's answer with a leading blank, so that a writer's "1" written over
# it (no O_TRUNC) reads "10"/"11" until the sim has answered: a reader polls until it sees a bare digit.
LOCK_YES = " 1\n"
LOCK_NO = " 0\n"
# the write-only attributes of the bus and of each driver that every device shares: FIFOs while the sim runs
SHARED = ("bind", "unbind", "new_id", "remove_id")
ADDR_RE = re.compile(r"[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def log(msg):
    sys.stderr.write("simkernel: %s\n" % msg)
    sys.stderr.flush()


class Dev:
    def __init__(self, addr, natural, group, topo, minor, orig_driver):
        self.addr = addr
        self.natural = natural
        self.orig_driver = orig_driver
        self.group = group
        self.topo = topo          # below sys/devices
        self.minor = minor        # nvidia minor, None when unknown
        self.vanished = False
        self.nv_info = None       # cached proc/driver/nvidia/gpus/<addr>/information
        self.locked = {}          # attribute path -> its content, while a hung unbind holds the device lock
        self.ids = {}


class Sim:
    def __init__(self, root, faults_file, uevents):
        self.root = os.path.abspath(root)
        self.simdir = self.J(".sim")
        self.ino = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.ino < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd = {}              # wd -> (kind, key, dirpath)
        self.wd_by_path = {}
        self.faults = {}
        self.writes_since_faults = 0
        self.seqnum = 1000
        self.blocked = {}         # driver -> path of the FIFO that replaced its unbind
        self.mu = threading.RLock()   # the sim's state: the event loop and the per-device workers
        self.sel = None
        self.fifo_fds = {}        # fd -> (kind, key, dirpath, name) of a shared attribute's FIFO we read
        self.fifo_paths = {}      # path -> fd currently there
        self.queues = {}          # addr -> [(op, delay_s, fn)] pending on that device (its worker runs them)
        self.pending_syncs = []   # sync names answered when the last queue empties
        self.stopping = False
        self.wlog = open(os.path.join(self.simdir, "writes.log"), "a", buffering=1)
        self.nl = None
        if uevents:
            self.open_netlink()
        self.load_spec()
        if faults_file:
            with open(faults_file) as f:
                data = f.read()
            tmp = os.path.join(self.simdir, "faults.json.tmp")
            with open(tmp, "w") as f:
                f.write(data)
            os.rename(tmp, os.path.join(self.simdir, "faults.json"))
        self.load_faults()

    def J(self, *p):
        return os.path.join(self.root, *p)

    # ------------------------------------------------------------------------------------------ setup

    def open_netlink(self):
        names = [n for _, n in socket.if_nameindex()]
        others = [n for n in names if n != "lo"]
        if others:
            raise SystemExit("simkernel: refusing to emit kernel uevents in a network namespace with interfaces "
                             "%s: run under `unshare -n` (or pass --no-uevents)" % ", ".join(others))
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
        s.bind((0, 0))
        self.nl = s

    def load_spec(self):
        self.devs = {}
        self.iommufd = os.path.exists(self.J("dev/iommu"))
        self.group_major = 240
        self.vfio_dev_major = 241
        spec = {}
        try:
            with open(os.path.join(self.simdir, "spec.json")) as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            log("no usable .sim/spec.json (%s): natural driver = current driver" % e)
        self.iommufd = bool(spec.get("iommufd", self.iommufd))
        self.group_major = int(spec.get("vfioGroupMajor", 240))
        self.vfio_dev_major = int(spec.get("vfioDevMajor", 241))
        by_addr = {d["addr"]: d for d in spec.get("devices", [])}
        devroot = self.J("sys/bus/pci/devices")
        for addr in sorted(os.listdir(devroot)):
            real = os.path.realpath(os.path.join(devroot, addr))
            topo = os.path.relpath(real, self.J("sys/devices"))
            s = by_addr.get(addr, {})
            cur = self.driver_of(addr)
            natural = s.get("naturalDriver", s.get("driver", cur)) if s else cur
            group = s.get("group")
            if group is None:
                try:
                    group = int(os.path.basename(os.readlink(os.path.join(real, "iommu_group"))))
                except OSError:
                    group = None
            minor = s.get("nvidiaMinor")
            info = self.J("proc/driver/nvidia/gpus", addr, "information")
            d = Dev(addr, natural, group, topo, minor, s.get("driver", cur))
            try:
                with open(info) as f:
                    d.nv_info = f.read()
                for line in d.nv_info.splitlines():
                    if line.startswith("Device Minor:"):
                        d.minor = int(line.split(":", 1)[1])
            except OSError:
                pass
            for k in ("vendor", "device", "subsystem_vendor", "subsystem_device", "class"):
                try:
                    with open(os.path.join(real, k)) as f:
                        d.ids[k] = f.read().strip()
                except OSError:
                    d.ids[k] = ""
            self.devs[addr] = d
        used = {d.minor for d in self.devs.values() if d.minor is not None}
        nxt = 0
        for d in self.devs.values():   # GPUs that may land on nvidia need a minor
            if d.minor is None and d.natural == "nvidia" and d.ids.get("class", "").startswith("0x03"):
                while nxt in used:
                    nxt += 1
                d.minor = nxt
                used.add(nxt)

    def load_faults(self):
        path = os.path.join(self.simdir, "faults.json")
        try:
            with open(path) as f:
                text = f.read()
            f = json.loads(text) if text.strip() else {}
        except FileNotFoundError:
            f = {}
        except ValueError as e:
            log("faults.json: %s (ignored)" % e)
            return
        known = {"refuseBind", "blockUnbind", "vanish", "vanishOnUnbind", "failVfioNode", "refuseUnbindLock",
                 "probeNoop", "killAfterWrites", "latencyMs", "deviceLocked"}
        for k in f:
            if k not in known:
                log("faults.json: unknown switch %r (ignored)" % k)
        self.faults = f
        self.writes_since_faults = 0
        log("faults: %s" % json.dumps(f, sort_keys=True))
        for addr in list(self.blocked_addrs_removed()):
            self.unblock(addr)
        for addr in f.get("blockUnbind", []) or []:
            # a driver without an unbind lock gives no handshake before the unbind to arm the FIFO at: armed now
            d = self.devs.get(addr)
            drv = self.driver_of(addr) if d and not d.vanished else ""
            if drv and drv != "nvidia":
                self.block(d)
        for d in self.devs.values():   # the hung unbind gave up the device lock: the fault is off
            if d.locked and not self.fault("blockUnbind", d.addr) and not self.fault("deviceLocked", d.addr):
                self.unlock_device(d)
        for addr in f.get("deviceLocked", []) or []:
            d = self.devs.get(addr)
            if d and not d.vanished:
                self.lock_device(d)
        for addr in f.get("vanish", []) or []:
            d = self.devs.get(addr)
            if d and not d.vanished:
                self.vanish(d)

    def fault(self, name, key):
        v = self.faults.get(name)
        if v is True:
            return True
        return bool(v) and key in v

    def add_watch(self, path, mask, kind, key=None):
        w = _libc.inotify_add_watch(self.ino, path.encode(), mask)
        if w < 0:
            e = ctypes.get_errno()
            if e != errno.ENOENT:
                log("inotify_add_watch %s: %s" % (path, os.strerror(e)))
            return
        self.wd[w] = (kind, key, path)
        self.wd_by_path[path] = w

    def setup_watches(self):
        self.add_watch(self.simdir, IN_CLOSE_WRITE | IN_MOVED_TO, "sim")
        self.add_watch(self.J("sys/bus/pci"), IN_CLOSE_WRITE, "bus")
        self.add_watch(self.J("sys/bus/pci/drivers"), IN_CREATE | IN_MOVED_TO, "drivers")
        for d in sorted(os.listdir(self.J("sys/bus/pci/drivers"))):
            self.add_watch(self.J("sys/bus/pci/drivers", d), IN_CLOSE_WRITE, "driver", d)
            self.fifo_driver(d)
        self.fifo_make(self.J("sys/bus/pci/drivers_probe"), "bus", None)
        for d in self.devs.values():
            self.add_watch(self.J("sys/devices", d.topo), IN_CLOSE_WRITE, "dev", d.addr)
        gpus = self.J("proc/driver/nvidia/gpus")
        if os.path.isdir(gpus):
            for a in os.listdir(gpus):
                lock = os.path.join(gpus, a, "unbindLock")
                if os.path.exists(lock):
                    v = (self.first_line(lock) or "0")[:1]
                    self.rewrite(lock, LOCK_YES if v == "1" else LOCK_NO)
                self.add_watch(os.path.join(gpus, a), IN_CLOSE_WRITE, "nvgpu", a)

    # ------------------------------------------------------------------------------------------ helpers

    def dev_path(self, d):
        return self.J("sys/devices", d.topo)

    def driver_of(self, addr):
        try:
            return os.path.basename(os.readlink(self.J("sys/bus/pci/devices", addr, "driver")))
        except OSError:
            return ""

    def override_of(self, d):
        saved = self.locked_value(d, "driver_override")
        if saved is not None:
            v = saved.split("\n", 1)[0].strip()
            return "" if v in ("", NULL) else v
        try:
            with open(os.path.join(self.dev_path(d), "driver_override")) as f:
                v = f.readline().strip()
        except OSError:
            return ""
        return "" if v in ("", NULL) else v

    def rewrite(self, path, text):
        """Set a readable attribute to its canonical value: a new file renamed over it, so a reader never sees it
        half written and the sim gets no close-write event of its own."""
        tmp = path + ".simtmp"
        try:
            st = os.stat(path)
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.rename(tmp, path)
        except OSError as e:
            log("rewrite %s: %s" % (path, e.strerror))

    def first_line(self, path):
        try:
            if stat.S_ISFIFO(os.stat(path).st_mode):
                return None   # a blocked unbind of ours: never open it (it would hang the sim)
            with open(path, "rb") as f:
                data = f.read(4096)
        except OSError:
            return None
        return data.split(b"\n", 1)[0].decode(errors="replace").strip()

    def record(self, rel, value):
        self.wlog.write("%s %s\n" % (rel, value if value != "" else "(empty)"))
        self.writes_since_faults += 1
        n = self.faults.get("killAfterWrites")
        if isinstance(n, int) and not isinstance(n, bool) and self.writes_since_faults == n:
            try:
                with open(os.path.join(self.simdir, "victim.pid")) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGKILL)
                log("killAfterWrites: SIGKILL to %d after write %d (%s)" % (pid, n, rel))
            except (OSError, ValueError) as e:
                log("killAfterWrites: %s" % e)

    def symlink(self, target, link):
        tmp = link + ".simtmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(os.path.relpath(target, os.path.dirname(link)), tmp)
        os.rename(tmp, link)

    def unlink(self, path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def uevent(self, action, d, driver=None):
        if self.nl is None:
            return
        self.seqnum += 1
        devpath = "/devices/" + d.topo
        env = ["ACTION=" + action, "DEVPATH=" + devpath, "SUBSYSTEM=pci"]
        if driver:
            env.append("DRIVER=" + driver)
        cls = d.ids.get("class", "0x000000")[2:].upper()
        ven = d.ids.get("vendor", "0x0000")[2:].upper()
        dev = d.ids.get("device", "0x0000")[2:].upper()
        sv = d.ids.get("subsystem_vendor", "0x0000")[2:].upper()
        sd = d.ids.get("subsystem_device", "0x0000")[2:].upper()
        env += ["PCI_CLASS=" + cls.lstrip("0") or "0", "PCI_ID=%s:%s" % (ven, dev),
                "PCI_SUBSYS_ID=%s:%s" % (sv, sd), "PCI_SLOT_NAME=" + d.addr,
                "MODALIAS=pci:v0000%sd0000%ssv0000%ssd0000%sbc%ssc%si%s" % (ven, dev, sv, sd, cls[0:2], cls[2:4],
                                                                          cls[4:6]),
                "SEQNUM=%d" % self.seqnum]
        msg = ("%s@%s\0" % (action, devpath) + "\0".join(env) + "\0").encode()
        try:
            self.nl.sendto(msg, (0, 1))
        except OSError as e:
            log("uevent %s %s: %s" % (action, d.addr, e.strerror))

    def group_on_vfio(self, group, except_addr=None):
        return [d for d in self.devs.values() if d.group == group and d.addr != except_addr and not d.vanished
                and self.driver_of(d.addr) == "vfio-pci"]

    def holders(self, minor):
        want = os.makedev(NVIDIA_MAJOR, minor)
        out = []
        proc = self.J("proc")
        for pid in os.listdir(proc):
            if not pid.isdigit():
                continue
            fdd = os.path.join(proc, pid, "fd")
            try:
                fds = os.listdir(fdd)
            except OSError:
                continue
            for fd in fds:
                try:
                    st = os.stat(os.path.join(fdd, fd))
                except OSError:
                    continue
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == want:
                    out.append(int(pid))
                    break
        return out

    # ------------------------------------------------------------------------------------------ driver core

    def do_bind(self, d, drv):
        """Attach d to drv (the driver's probe succeeded)."""
        if drv == "vfio-pci" and self.fault("refuseBind", d.addr):
            log("refuseBind: vfio-pci probe of %s fails" % d.addr)
            return False
        ddir = self.J("sys/bus/pci/drivers", drv)
        dpath = self.dev_path(d)
        self.symlink(dpath, os.path.join(ddir, d.addr))
        self.symlink(ddir, os.path.join(dpath, "driver"))
        if drv == "vfio-pci" and d.group is not None:
            node = self.J("dev/vfio", str(d.group))
            if self.fault("failVfioNode", d.group):
                log("failVfioNode: no dev/vfio/%d" % d.group)
            elif not os.path.exists(node):
                os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(self.group_major, d.group % (1 << 20)))
            if self.iommufd:
                self.add_vfio_dev(d)
        if drv == "nvidia" and d.minor is not None:
            self.add_nvidia_proc(d)
        log("bind %s -> %s" % (d.addr, drv))
        self.uevent("bind", d, drv)
        return True

    def do_unbind(self, d):
        drv = self.driver_of(d.addr)
        if not drv:
            return
        dpath = self.dev_path(d)
        self.unlink(os.path.join(dpath, "driver"))
        self.unlink(self.J("sys/bus/pci/drivers", drv, d.addr))
        if drv == "vfio-pci":
            if self.iommufd:
                self.remove_vfio_dev(d)
            if d.group is not None and not self.group_on_vfio(d.group, d.addr):
                self.unlink(self.J("dev/vfio", str(d.group)))
        if drv == "nvidia":
            self.remove_nvidia_proc(d)
        log("unbind %s from %s" % (d.addr, drv))
        self.uevent("unbind", d)

    def add_vfio_dev(self, d):
        vd = os.path.join(self.dev_path(d), "vfio-dev")
        if os.path.isdir(vd) and os.listdir(vd):
            return
        os.makedirs(self.J("dev/vfio/devices"), exist_ok=True)
        used = set(os.listdir(self.J("dev/vfio/devices")))
        n = 0
        while "vfio%d" % n in used:
            n += 1
        os.makedirs(os.path.join(vd, "vfio%d" % n))
        with open(os.path.join(vd, "vfio%d" % n, "dev"), "w") as f:
            f.write("%d:%d\n" % (self.vfio_dev_major, n))
        os.mknod(self.J("dev/vfio/devices", "vfio%d" % n), 0o600 | stat.S_IFCHR, os.makedev(self.vfio_dev_major, n))

    def remove_vfio_dev(self, d):
        vd = os.path.join(self.dev_path(d), "vfio-dev")
        if not os.path.isdir(vd):
            return
        for n in os.listdir(vd):
            self.unlink(os.path.join(vd, n, "dev"))
            try:
                os.rmdir(os.path.join(vd, n))
            except OSError:
                pass
            self.unlink(self.J("dev/vfio/devices", n))
        try:
            os.rmdir(vd)
        except OSError:
            pass

    def add_nvidia_proc(self, d):
        gdir = self.J("proc/driver/nvidia/gpus", d.addr)
        os.makedirs(gdir, exist_ok=True)
        if d.nv_info is None:
            d.nv_info = "Model: \t\t NVIDIA GPU\nBus Location: \t %s\nDevice Minor: \t %d\n" % (d.addr, d.minor)
        with open(os.path.join(gdir, "information"), "w") as f:
            f.write(d.nv_info)
        with open(os.path.join(gdir, "unbindLock"), "w") as f:
            f.write(LOCK_NO)
        node = self.J("dev/nvidia%d" % d.minor)
        if not os.path.exists(node):
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(NVIDIA_MAJOR, d.minor))
        if gdir not in self.wd_by_path:
            self.add_watch(gdir, IN_CLOSE_WRITE, "nvgpu", d.addr)

    def remove_nvidia_proc(self, d):
        gdir = self.J("proc/driver/nvidia/gpus", d.addr)
        if not os.path.isdir(gdir):
            return
        w = self.wd_by_path.pop(gdir, None)
        if w is not None:
            _libc.inotify_rm_watch(self.ino, w)
            self.wd.pop(w, None)
        for f in os.listdir(gdir):
            self.unlink(os.path.join(gdir, f))
        os.rmdir(gdir)

    def allowed(self, d, drv):
        ov = self.override_of(d)
        if ov:
            return ov == drv
        return drv in (d.natural, d.orig_driver)

    def probe(self, d):
        if d.vanished or self.driver_of(d.addr):
            return
        if self.fault("probeNoop", d.addr):
            log("probeNoop: probe of %s binds nothing" % d.addr)
            return
        ov = self.override_of(d)
        drv = ov if ov else d.natural
        if not drv:
            return
        if not os.path.isdir(self.J("sys/bus/pci/drivers", drv)):
            log("probe %s: driver %s not loaded" % (d.addr, drv))
            return
        self.do_bind(d, drv)

    def vanish(self, d):
        log("vanish %s" % d.addr)
        if self.driver_of(d.addr):
            self.do_unbind(d)
        dpath = self.dev_path(d)
        w = self.wd_by_path.pop(dpath, None)
        if w is not None:
            _libc.inotify_rm_watch(self.ino, w)
            self.wd.pop(w, None)
        self.uevent("remove", d)
        d.vanished = True
        self.unlink(self.J("sys/bus/pci/devices", d.addr))
        if d.group is not None:
            self.unlink(self.J("sys/kernel/iommu_groups", str(d.group), "devices", d.addr))
        for dirpath, dirnames, filenames in os.walk(dpath, topdown=False):
            for n in filenames + [x for x in dirnames if os.path.islink(os.path.join(dirpath, x))]:
                self.unlink(os.path.join(dirpath, n))
            for n in dirnames:
                p = os.path.join(dirpath, n)
                if not os.path.islink(p):
                    try:
                        os.rmdir(p)
                    except OSError:
                        pass
        try:
            os.rmdir(dpath)
        except OSError as e:
            log("vanish %s: rmdir: %s" % (d.addr, e.strerror))

    # ------------------------------------------------------------------------------------------ blockUnbind

    def blocked_addrs_removed(self):
        want = set(self.faults.get("blockUnbind", []) or [])
        return [a for a in list(self.blocked) if a not in want]

    def block(self, d):
        """Replace the unbind file of d's driver by a FIFO nobody reads: the next unbind write hangs in open()."""
        if d.addr in self.blocked:
            return
        drv = self.driver_of(d.addr)
        if not drv:
            return
        for other in list(self.blocked):   # one FIFO per driver
            if self.blocked[other][0] == drv:
                self.unblock(other)
        path = self.J("sys/bus/pci/drivers", drv, "unbind")
        tmp = path + ".simfifo"
        self.unlink(tmp)
        os.mkfifo(tmp, 0o200)
        os.rename(tmp, path)
        self.blocked[d.addr] = (drv, path)
        log("blockUnbind: %s is a FIFO now (unbind of %s will hang)" % (path, d.addr))

    def locked_value(self, d, attr):
        return d.locked.get(os.path.join(self.dev_path(d), attr))

    def lock_device(self, d):
        """A hung unbind holds d's device lock: the attributes whose show/store take it become FIFOs."""
        for attr in ("driver_override", "sriov_numvfs"):
            path = os.path.join(self.dev_path(d), attr)
            try:
                if path in d.locked or not os.path.isfile(path):
                    continue
                with open(path) as f:
                    d.locked[path] = f.read()
                tmp = path + ".simfifo"
                self.unlink(tmp)
                os.mkfifo(tmp, 0o600)
                os.rename(tmp, path)
            except OSError as e:
                log("lock %s: %s" % (path, e.strerror))
        log("device lock of %s held (its unbind hangs)" % d.addr)

    def unlock_device(self, d):
        for path, text in list(d.locked.items()):
            tmp = path + ".simtmp"
            try:
                with open(tmp, "w") as f:
                    f.write(text)
                os.chmod(tmp, 0o644)
                os.rename(tmp, path)
            except OSError as e:
                log("unlock %s: %s" % (path, e.strerror))
        d.locked = {}

    def unblock(self, addr):
        drv, path = self.blocked.pop(addr)
        self.fifo_make(path, "driver", drv)
        log("blockUnbind: %s is read by the sim again" % path)

    def touching(self, addr):
        """The plugin started on addr: arm or disarm the FIFO."""
        d = self.devs.get(addr)
        if d is None:
            return
        if self.fault("blockUnbind", addr):
            self.block(d)
            return
        drv = self.driver_of(addr)
        for other in list(self.blocked):
            if self.blocked[other][0] == drv:
                self.unblock(other)

    # ------------------------------------------------------------------------------------------ events

    def on_write(self, kind, key, dirpath, name):
        path = os.path.join(dirpath, name)
        if kind == "sim":
            if name == "faults.json":
                self.load_faults()
            elif name.startswith("sync-"):
                self.drain_fifos()   # every write made before the sync was asked for
                self.pending_syncs.append(name[5:])
                if not self.queues:
                    self.answer_syncs()
            return
        value = self.first_line(path)
        if value is None:
            return
        if kind == "dev":
            d = self.devs[key]
            self.record("sys/bus/pci/devices/%s/%s" % (key, name), value)
            if name == "driver_override":
                if self.fault("blockUnbind", key):
                    self.touching(key)
                self.rewrite(path, (value if value and value != NULL else NULL) + "\n")
                if key in self.blocked and value and value != NULL:
                    self.lock_device(d)
            return
        rel = os.path.relpath(path, self.root)
        if kind == "nvgpu":
            if name != "unbindLock":
                self.record(rel, value)
                return
            value = value[:1]   # the digit written over the canonical " N"
            self.record(rel, value)
            d = self.devs.get(key)
            self.touching(key)
            if value == "1":
                held = self.holders(d.minor) if d and d.minor is not None else []
                refused = self.fault("refuseUnbindLock", key)
                ok = not held and not refused
                if not ok:
                    log("unbindLock %s refused (%s)" % (key, "holders %s" % held if held else "fault"))
                self.rewrite(path, LOCK_YES if ok else LOCK_NO)
            else:
                self.rewrite(path, LOCK_NO)
            return
        self.on_value(kind, key, path, name, value)
        if kind == "driver" and name in SHARED:   # a driver that appeared after the start: read it from now on
            self.fifo_make(path, kind, key)

    def on_value(self, kind, key, path, name, value):
        """One store to a shared attribute (drivers_probe, a driver's bind/unbind/new_id)."""
        self.record(os.path.relpath(path, self.root), value)
        if not value:
            return
        d = self.devs.get(value.lower())
        if kind == "driver" and name == "new_id":
            log("new_id written to %s: %s (the plugin must never do this)" % (key, value))
        if d is None:
            return
        if kind == "bus" and name == "drivers_probe":
            self.schedule(d, "probe", lambda: self.probe(d))
        elif kind == "driver" and name == "unbind":
            self.schedule(d, "unbind", lambda: self.unbind_op(d, key))
        elif kind == "driver" and name == "bind":
            self.schedule(d, "bind", lambda: self.bind_op(d, key))

    def unbind_op(self, d, drv):
        if not d.vanished and self.driver_of(d.addr) == drv:
            if self.fault("vanishOnUnbind", d.addr):
                self.vanish(d)
            else:
                self.do_unbind(d)

    def bind_op(self, d, drv):
        if not d.vanished and not self.driver_of(d.addr) and self.allowed(d, drv):
            self.do_bind(d, drv)

    # ------------------------------------------------------------------------------------------ latency

    def latency(self, op):
        v = self.faults.get("latencyMs")
        if not isinstance(v, dict):
            return 0.0
        try:
            return max(0.0, float(v.get(op, 0) or 0)) / 1000.0
        except (TypeError, ValueError):
            return 0.0

    def schedule(self, d, op, fn):
        """Run a driver-core operation on d: now when it takes no time and d has nothing pending; else after its
        latency on d's own worker, after d's earlier operations (the device lock), never after another device's."""
        delay = self.latency(op)
        q = self.queues.get(d.addr)
        if q is None and delay == 0:
            fn()
            return
        if q is None:
            q = self.queues[d.addr] = []
            threading.Thread(target=self.dev_worker, args=(d.addr,), daemon=True).start()
        q.append((op, delay, fn))

    def dev_worker(self, addr):
        while True:
            with self.mu:
                q = self.queues[addr]
                if not q or self.stopping:
                    del self.queues[addr]
                    if not self.queues:
                        self.answer_syncs()
                    return
                op, delay, fn = q[0]
            if delay:
                time.sleep(delay)
            with self.mu:
                q.pop(0)
                if self.stopping:
                    continue
                try:
                    fn()
                except OSError as e:
                    log("%s of %s: %s" % (op, addr, e))

    def answer_syncs(self):
        for name in self.pending_syncs:
            with open(os.path.join(self.simdir, "synced-" + name), "w"):
                pass
        self.pending_syncs = []

    # ------------------------------------------------------------------------------------------ shared FIFOs

    def fifo_make(self, path, kind, key):
        """Put a FIFO the sim reads at path (a write-only attribute every device shares)."""
        tmp = path + ".simfifo"
        self.unlink(tmp)
        os.mkfifo(tmp, 0o200)
        fd = os.open(tmp, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        os.rename(tmp, path)
        self.fifo_paths[path] = fd
        self.fifo_fds[fd] = (kind, key, os.path.dirname(path), os.path.basename(path))
        if self.sel is not None:
            self.sel.register(fd, selectors.EVENT_READ, "fifo")

    def fifo_driver(self, drv):
        for name in SHARED:
            path = self.J("sys/bus/pci/drivers", drv, name)
            if os.path.isfile(path) and path not in self.fifo_paths:
                self.fifo_make(path, "driver", drv)

    def read_fifo(self, fd):
        data = b""
        while True:
            try:
                b = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not b:
                break
            data += b
        if not data:
            return
        kind, key, dirpath, name = self.fifo_fds[fd]
        for line in data.decode(errors="replace").split("\n"):
            found = ADDR_RE.findall(line)
            for v in found or ([line.strip()] if line.strip() else []):
                try:
                    self.on_value(kind, key, os.path.join(dirpath, name), name, v)
                except OSError as e:
                    log("handling %s/%s: %s" % (dirpath, name, e))

    def drain_fifos(self):
        for fd in list(self.fifo_fds):
            self.read_fifo(fd)

    def fifo_restore(self):
        """Back to plain write-only files (the fixture without the sim)."""
        for path in list(self.fifo_paths):
            tmp = path + ".simtmp"
            try:
                with open(tmp, "w"):
                    pass
                os.chmod(tmp, 0o200)
                os.rename(tmp, path)
            except OSError as e:
                log("restore %s: %s" % (path, e.strerror))
        for fd in self.fifo_fds:
            os.close(fd)
        self.fifo_paths, self.fifo_fds = {}, {}

    def handle(self, buf):
        off = 0
        while off < len(buf):
            w, mask, _cookie, ln = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16: off + 16 + ln].split(b"\0", 1)[0].decode(errors="replace")
            off += 16 + ln
            if mask & IN_Q_OVERFLOW:
                log("inotify queue overflow: events lost")
                continue
            ent = self.wd.get(w)
            if ent is None:
                continue
            kind, key, dirpath = ent
            if mask & IN_IGNORED:
                self.wd.pop(w, None)
                if self.wd_by_path.get(dirpath) == w:
                    del self.wd_by_path[dirpath]
                continue
            if kind == "drivers" and mask & (IN_CREATE | IN_MOVED_TO) and mask & IN_ISDIR:
                self.add_watch(os.path.join(dirpath, name), IN_CLOSE_WRITE, "driver", name)
                self.fifo_driver(name)
                continue
            if kind == "sim" and mask & IN_MOVED_TO:
                if name == "faults.json":
                    self.load_faults()
                continue
            if name.endswith((".simtmp", ".simfifo")):
                continue   # the sim's own replacement files
            if mask & IN_CLOSE_WRITE:
                try:
                    self.on_write(kind, key, dirpath, name)
                except OSError as e:
                    log("handling %s/%s: %s" % (dirpath, name, e))

    def run(self):
        sel = self.sel = selectors.DefaultSelector()
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        stop = []
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: stop.append(1))
        sel.register(self.ino, selectors.EVENT_READ, "ino")
        sel.register(rfd, selectors.EVENT_READ, "sig")
        with self.mu:
            self.setup_watches()
        with open(os.path.join(self.simdir, "pid"), "w") as f:
            f.write("%d\n" % os.getpid())
        with open(os.path.join(self.simdir, "ready"), "w") as f:
            f.write("%d\n" % os.getpid())
        log("ready: %d devices, uevents %s" % (len(self.devs), "on" if self.nl else "off"))
        while not stop:
            ready = sel.select()
            with self.mu:
                # attribute writes (inotify) before the shared FIFOs: a writer sets a device's driver_override
                # before it writes the device to unbind or drivers_probe
                for key, _ in sorted(ready, key=lambda r: r[0].data != "ino"):
                    if key.data == "sig":
                        try:
                            os.read(rfd, 64)
                        except BlockingIOError:
                            pass
                    elif key.data == "fifo":
                        if key.fd in self.fifo_fds:
                            self.read_fifo(key.fd)
                    else:
                        try:
                            buf = os.read(self.ino, 65536)
                        except BlockingIOError:
                            continue
                        self.handle(buf)
        with self.mu:
            self.stopping = True
            for a in list(self.blocked):
                self.unblock(a)
            for d in self.devs.values():
                if d.locked:
                    self.unlock_device(d)
            for fd in self.fifo_fds:
                sel.unregister(fd)
            self.fifo_restore()
        try:
            os.unlink(os.path.join(self.simdir, "ready"))
        except FileNotFoundError:
            pass
        log("stopped")


def main(argv):
    ap = argparse.ArgumentParser(prog="simkernel.py", description="Simulated kernel for a fixture node.")
    ap.add_argument("root")
    ap.add_argument("--faults", help="JSON file with fault switches (copied to ROOT/.sim/faults.json)")
    ap.add_argument("--no-uevents", action="store_true", help="do not emit kernel uevents")
    a = ap.parse_args(argv)
    if not os.path.isdir(os.path.join(a.root, "sys/bus/pci/devices")):
        sys.stderr.write("simkernel: %s is not a fixture node (no sys/bus/pci/devices)\n" % a.root)
        return 2
    os.makedirs(os.path.join(a.root, ".sim"), exist_ok=True)
    Sim(a.root, a.faults, not a.no_uevents).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
