#!/usr/bin/env python3
"""simnode.py — build a simulated node: a host-root tree with the sysfs, /dev and /proc a PCI GPU host shows.

Usage:
    python3 hack/simnode.py ROOT SPEC.json          (SPEC "-" reads standard input)
    python3 hack/simnode.py ROOT --preset NAME [--gpus N]
Presets: demo8 (8 L40S on nvidia over 2 NUMA nodes, each behind a root port, one held by dcgm-exporter),
         vfio  (N L40S + audio already on vfio-pci, 2 NUMA nodes; --gpus N, default 8, up to 512).

The spec format is the one in /tmp/team.md ("Simulated node"); keys beyond it:
  "driverOverride": "vfio-pci" (device; default null = "(null)"), "sriovTotalvfs": N (device),
  "revision": N (device), "naturalDriver" (device; default = driver).
ROOT/.sim/spec.json receives the full spec, presets expanded and every default filled in, for the simulated
kernel. Device numbers: dev/nvidia<m> 195:m, dev/vfio/vfio 10:196, dev/iommu 10:123, dev/vfio/<g> 240:<g>,
dev/vfio/devices/vfioN 241:N, dev/null 1:3 (spec keys vfioGroupMajor, vfioDevMajor).

Importable: build(root, spec), normalize(spec), preset(name, gpus). Needs root (mknod); stdlib only.
"""
import argparse
import copy
import errno
import json
import os
import re
import sys

ADDR_RE = re.compile(r'^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$')
HEX4_RE = re.compile(r'^[0-9a-f]{4}$')
CLASS_RE = re.compile(r'^[0-9a-f]{6}$')

NVIDIA_MAJOR = 195
VFIO_GROUP_MAJOR = 240
VFIO_DEV_MAJOR = 241
DEFAULT_BOOT_ID = "3f0e6c1a-5b2d-4c8e-9a71-0d4b2e6f8a10"


class SpecError(Exception):
    pass


def _bus(addr):
    """The bus number of DDDD[DDDD]:BB:DD.F (domains wider than 4 digits, as Intel VMD's 10000:, included)."""
    return int(addr.split(":")[1], 16)


def _slot(addr):
    """domain:bus:device of an address (the card a function belongs to)."""
    return addr.rsplit(".", 1)[0]


# ---------------------------------------------------------------------------------------------------- presets

def _l40s(addr, driver, group, numa, minor=None, parent=None, natural=None):
    gpu = {"addr": addr, "vendor": "10de", "device": "26b9", "class": "030200", "subsys": "10de:1851",
           "driver": driver, "group": group, "numa": numa, "bootVga": False}
    if minor is not None:
        gpu["nvidiaMinor"] = minor
    if parent:
        gpu["parent"] = parent
    if natural:
        gpu["naturalDriver"] = natural
    audio_addr = addr[:-1] + "1"
    audio = {"addr": audio_addr, "vendor": "10de", "device": "22ba", "class": "040300", "subsys": "10de:1851",
             "driver": "snd_hda_intel" if driver == "nvidia" else driver, "group": group, "numa": numa}
    if parent:
        audio["parent"] = parent
    if natural:
        audio["naturalDriver"] = "snd_hda_intel"
    return gpu, audio


def _root_port(addr, group, numa):
    return {"addr": addr, "vendor": "8086", "device": "347a", "class": "060400", "subsys": "8086:0000",
            "driver": None, "group": group, "numa": numa, "headerType": 1}


def preset(name, gpus=None):
    if name == "demo8":
        if gpus not in (None, 8):
            raise SpecError("preset demo8 has exactly 8 GPUs (--gpus does not apply)")
        devices = []
        buses = [(0x61, 0), (0x62, 0), (0x63, 0), (0x64, 0), (0xa1, 1), (0xa2, 1), (0xa3, 1), (0xa4, 1)]
        for i, (bus, numa) in enumerate(buses):
            rp = "0000:%02x:%02x.0" % (bus & 0xf0, bus & 0x0f)   # 0000:60:01.0 .. 0000:a0:04.0
            devices.append(_root_port(rp, 40 + i, numa))
            gpu, audio = _l40s("0000:%02x:00.0" % bus, "nvidia", 12 + i, numa, minor=i, parent=rp)
            if gpu["addr"] == "0000:62:00.0":
                gpu["holders"] = [{"pid": 4242, "comm": "dcgm-exporter"}]
            devices += [gpu, audio]
        return {"iommu": True, "iommufd": False,
                "cmdline": "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=0b1c ro intel_iommu=on iommu=pt",
                "bootId": DEFAULT_BOOT_ID, "drivers": ["vfio-pci"], "devices": devices}
    if name == "vfio":
        n = 8 if gpus is None else gpus
        if n < 1 or n > 512:
            raise SpecError("--gpus must be 1..512, got %d" % n)
        devices = []
        for i in range(n):
            domain, bus = divmod(i, 255)
            addr = "%04x:%02x:00.0" % (domain, bus + 1)
            numa = 0 if i < (n + 1) // 2 else 1
            devices += list(_l40s(addr, "vfio-pci", i + 1, numa, minor=i if i < 255 else None, natural="nvidia"))
        return {"iommu": True, "iommufd": False,
                "cmdline": "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=0b1c ro intel_iommu=on iommu=pt "
                           "vfio-pci.ids=10de:26b9,10de:22ba",
                "bootId": DEFAULT_BOOT_ID, "drivers": ["vfio-pci", "nvidia", "snd_hda_intel"], "devices": devices}
    raise SpecError("unknown preset %r (known: demo8, vfio)" % name)


# ---------------------------------------------------------------------------------------------------- spec

def _norm_hex(v, what, width, rx):
    if isinstance(v, int):
        v = "%0*x" % (width, v)
    if not isinstance(v, str) or not rx.match(v.lower()):
        raise SpecError("%s: expected %d hex digits, got %r" % (what, width, v))
    return v.lower()


def normalize(spec):
    """Validate and fill every default. Returns a new dict."""
    if not isinstance(spec, dict):
        raise SpecError("spec: expected an object")
    known = {"iommu", "iommufd", "cmdline", "bootId", "drivers", "noVfioDriver", "devices",
             "vfioGroupMajor", "vfioDevMajor"}
    for k in spec:
        if k not in known:
            raise SpecError("spec: unknown key %r" % k)
    s = {}
    s["iommu"] = bool(spec.get("iommu", True))
    s["iommufd"] = bool(spec.get("iommufd", False))
    s["cmdline"] = spec.get("cmdline", "BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro" +
                            (" intel_iommu=on iommu=pt" if s["iommu"] else ""))
    s["bootId"] = spec.get("bootId", DEFAULT_BOOT_ID)
    s["noVfioDriver"] = bool(spec.get("noVfioDriver", False))
    s["vfioGroupMajor"] = int(spec.get("vfioGroupMajor", VFIO_GROUP_MAJOR))
    s["vfioDevMajor"] = int(spec.get("vfioDevMajor", VFIO_DEV_MAJOR))
    devs = []
    seen = set()
    minors = set()
    dev_known = {"addr", "vendor", "device", "class", "subsys", "driver", "group", "numa", "bootVga",
                 "sriovNumvfs", "sriovTotalvfs", "headerType", "parent", "nvidiaMinor", "holders",
                 "naturalDriver", "driverOverride", "revision"}
    for i, d in enumerate(spec.get("devices", [])):
        where = "devices[%d]" % i
        if not isinstance(d, dict):
            raise SpecError("%s: expected an object" % where)
        for k in d:
            if k not in dev_known:
                raise SpecError("%s: unknown key %r" % (where, k))
        addr = str(d.get("addr", "")).lower()
        if not ADDR_RE.match(addr):
            raise SpecError("%s.addr: expected DDDD:BB:DD.F, got %r" % (where, d.get("addr")))
        if addr in seen:
            raise SpecError("%s.addr: duplicate %s" % (where, addr))
        seen.add(addr)
        o = {"addr": addr}
        o["vendor"] = _norm_hex(d.get("vendor", "10de"), where + ".vendor", 4, HEX4_RE)
        o["device"] = _norm_hex(d.get("device"), where + ".device", 4, HEX4_RE)
        o["class"] = _norm_hex(d.get("class", "030200"), where + ".class", 6, CLASS_RE)
        sub = d.get("subsys", "%s:0000" % o["vendor"])
        if not isinstance(sub, str) or not re.match(r'^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$', sub):
            raise SpecError("%s.subsys: expected VVVV:DDDD, got %r" % (where, sub))
        o["subsys"] = sub.lower()
        o["driver"] = d.get("driver")
        if o["driver"] is not None and (not isinstance(o["driver"], str) or not o["driver"] or "/" in o["driver"]):
            raise SpecError("%s.driver: expected a driver name or null" % where)
        g = d.get("group")
        if g is not None and (not isinstance(g, int) or isinstance(g, bool) or g < 0):
            raise SpecError("%s.group: expected a non-negative integer or null" % where)
        o["group"] = g
        o["numa"] = int(d.get("numa", -1))
        o["bootVga"] = bool(d.get("bootVga", False))
        o["sriovNumvfs"] = d.get("sriovNumvfs")
        if o["sriovNumvfs"] is not None:
            o["sriovNumvfs"] = int(o["sriovNumvfs"])
            o["sriovTotalvfs"] = int(d.get("sriovTotalvfs", max(16, o["sriovNumvfs"])))
        ht = int(d.get("headerType", 0))
        if ht not in (0, 1, 2):
            raise SpecError("%s.headerType: expected 0, 1 or 2" % where)
        o["headerType"] = ht
        o["revision"] = int(d.get("revision", 0xa1))
        p = d.get("parent")
        if p is not None:
            p = str(p).lower()
            if not ADDR_RE.match(p):
                raise SpecError("%s.parent: expected DDDD:BB:DD.F, got %r" % (where, d.get("parent")))
        o["parent"] = p
        m = d.get("nvidiaMinor")
        if m is not None:
            m = int(m)
            if m < 0 or m > 254:
                raise SpecError("%s.nvidiaMinor: expected 0..254" % where)
            if m in minors:
                raise SpecError("%s.nvidiaMinor: duplicate %d" % (where, m))
            minors.add(m)
        o["nvidiaMinor"] = m
        holders = []
        for j, h in enumerate(d.get("holders", []) or []):
            if not isinstance(h, dict) or not isinstance(h.get("pid"), int) or h["pid"] <= 0:
                raise SpecError("%s.holders[%d]: expected {\"pid\": N, \"comm\": NAME}" % (where, j))
            holders.append({"pid": h["pid"], "comm": str(h.get("comm", "proc%d" % h["pid"]))[:15]})
        if holders and m is None:
            raise SpecError("%s.holders: needs nvidiaMinor (holders open /dev/nvidia<minor>)" % where)
        o["holders"] = holders
        o["naturalDriver"] = d.get("naturalDriver", o["driver"])
        o["driverOverride"] = d.get("driverOverride")
        devs.append(o)
    for o in devs:
        if o["parent"] == o["addr"]:
            raise SpecError("device %s is its own parent" % o["addr"])
    by_addr = {o["addr"]: o for o in devs}
    for o in devs:   # no cycles
        cur, hops = o, 0
        while cur["parent"] and cur["parent"] in by_addr:
            cur = by_addr[cur["parent"]]
            hops += 1
            if hops > len(devs):
                raise SpecError("device %s: parent chain has a cycle" % o["addr"])
    devs.sort(key=lambda o: o["addr"])
    s["devices"] = devs
    drivers = set(spec.get("drivers", []) or [])
    if not s["noVfioDriver"]:
        drivers.add("vfio-pci")
    for o in devs:
        for k in ("driver", "naturalDriver"):
            if o[k]:
                drivers.add(o[k])
    s["drivers"] = sorted(drivers)
    if s["noVfioDriver"] and any(o["driver"] == "vfio-pci" for o in devs):
        raise SpecError("noVfioDriver but a device is on vfio-pci")
    return s


# ---------------------------------------------------------------------------------------------------- build

def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _mknod(path, major, minor):
    try:
        os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
    except PermissionError as e:
        sys.stderr.write("simnode: cannot create the character device %s (%s): run as root (CAP_MKNOD)\n"
                         % (path, e.strerror))
        sys.exit(1)


def _relink(target, link):
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


def _config_bytes(o, multifunction):
    c = bytearray(256)
    v, d = int(o["vendor"], 16), int(o["device"], 16)
    c[0:2] = v.to_bytes(2, "little")
    c[2:4] = d.to_bytes(2, "little")
    c[4:6] = (0x0006).to_bytes(2, "little")    # memory + bus master
    # status 0: no capability list
    c[8] = o["revision"] & 0xff
    cls = int(o["class"], 16)
    c[9], c[10], c[11] = cls & 0xff, (cls >> 8) & 0xff, (cls >> 16) & 0xff
    c[0x0e] = o["headerType"] | (0x80 if multifunction else 0)
    sv, sd = (int(x, 16) for x in o["subsys"].split(":"))
    if o["headerType"] == 0:
        c[0x2c:0x2e] = sv.to_bytes(2, "little")
        c[0x2e:0x30] = sd.to_bytes(2, "little")
        c[0x3d] = 1   # INTA
    elif o["headerType"] == 1:
        bus = _bus(o["addr"])
        c[0x18], c[0x19], c[0x1a] = bus, o.get("_secondary", 0), o.get("_subordinate", 0)
    return bytes(c)


def build(root, spec):
    s = normalize(spec)
    root = os.path.abspath(root)
    if os.path.exists(os.path.join(root, "sys")):
        raise SpecError("%s already holds a tree (sys/ exists)" % root)
    os.makedirs(root, exist_ok=True)
    J = lambda *p: os.path.join(root, *p)  # noqa: E731
    for d in ("sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/devices", "sys/kernel/iommu_groups",
              "sys/module", "dev/vfio", "proc/sys/kernel/random", "proc/driver/nvidia/gpus",
              "var/lib/kubelet/device-plugins", "etc/udev/rules.d", "run", ".sim"):
        os.makedirs(J(d), exist_ok=True)
    devs = s["devices"]
    by_addr = {o["addr"]: o for o in devs}

    # sysfs device paths (below sys/devices), parents first
    topo = {}

    def topo_of(addr):
        if addr in topo:
            return topo[addr]
        o = by_addr.get(addr)
        p = o["parent"] if o else None
        if p:
            t = topo_of(p) + "/" + addr
        else:
            t = "pci%s:%s/%s" % (addr.split(":")[0], addr.split(":")[1], addr)
        topo[addr] = t
        return t

    for o in devs:
        o["_topo"] = topo_of(o["addr"])
        if o["parent"] and o["parent"] not in by_addr:   # an upstream bridge not in the spec: directory only
            os.makedirs(J("sys/devices", os.path.dirname(o["_topo"])), exist_ok=True)
    for o in devs:   # bridges' secondary/subordinate buses from their children
        if o["parent"] in by_addr:
            b = by_addr[o["parent"]]
            bus = _bus(o["addr"])
            b["_secondary"] = bus if not b.get("_secondary") else min(b["_secondary"], bus)
            b["_subordinate"] = max(b.get("_subordinate", 0), bus)
    slots = {}
    for o in devs:
        slots.setdefault(_slot(o["addr"]), []).append(o)

    # drivers
    drv_root = J("sys/bus/pci/drivers")
    for d in s["drivers"]:
        os.makedirs(os.path.join(drv_root, d))
        for f in ("bind", "unbind", "new_id", "remove_id"):
            _write(os.path.join(drv_root, d, f), "", 0o200)
        os.makedirs(J("sys/module", d.replace("-", "_")), exist_ok=True)
        os.symlink(os.path.relpath(J("sys/module", d.replace("-", "_")), os.path.join(drv_root, d)),
                   os.path.join(drv_root, d, "module"))
    _write(J("sys/bus/pci/drivers_probe"), "", 0o200)
    _write(J("sys/bus/pci/rescan"), "", 0o200)

    # device nodes
    _mknod(J("dev/null"), 1, 3)
    _mknod(J("dev/vfio/vfio"), 10, 196)
    if s["iommufd"]:
        _mknod(J("dev/iommu"), 10, 123)
        os.makedirs(J("dev/vfio/devices"), exist_ok=True)

    groups = {}
    vfio_index = 0
    for o in devs:
        addr = o["addr"]
        dpath = J("sys/devices", o["_topo"])
        os.makedirs(dpath, exist_ok=True)
        _relink(dpath, J("sys/bus/pci/devices", addr))
        _write(os.path.join(dpath, "vendor"), "0x%s\n" % o["vendor"])
        _write(os.path.join(dpath, "device"), "0x%s\n" % o["device"])
        _write(os.path.join(dpath, "class"), "0x%s\n" % o["class"])
        sv, sd = o["subsys"].split(":")
        _write(os.path.join(dpath, "subsystem_vendor"), "0x%s\n" % sv)
        _write(os.path.join(dpath, "subsystem_device"), "0x%s\n" % sd)
        _write(os.path.join(dpath, "revision"), "0x%02x\n" % o["revision"])
        with open(os.path.join(dpath, "config"), "wb") as f:
            f.write(_config_bytes(o, len(slots[_slot(addr)]) > 1))
        _write(os.path.join(dpath, "numa_node"), "%d\n" % o["numa"])
        _write(os.path.join(dpath, "local_cpulist"), "0-15\n" if o["numa"] <= 0 else "16-31\n")
        _write(os.path.join(dpath, "driver_override"),
               (o["driverOverride"] if o["driverOverride"] else "(null)") + "\n")
        _write(os.path.join(dpath, "irq"), "%d\n" % (16 + len(groups)))
        _write(os.path.join(dpath, "enable"), "1\n")
        _write(os.path.join(dpath, "modalias"), "pci:v0000%sd0000%ssv0000%ssd0000%sbc%ssc%si%s\n" % (
            o["vendor"].upper(), o["device"].upper(), sv.upper(), sd.upper(),
            o["class"][0:2].upper(), o["class"][2:4].upper(), o["class"][4:6].upper()))
        _write(os.path.join(dpath, "resource"),
               "".join("0x%016x 0x%016x 0x%016x\n" % (0, 0, 0) for _ in range(13)))
        _write(os.path.join(dpath, "remove"), "", 0o200)
        _write(os.path.join(dpath, "reset"), "", 0o200)
        os.symlink(os.path.relpath(J("sys/bus/pci"), dpath), os.path.join(dpath, "subsystem"))
        if int(o["class"][:2], 16) == 0x03:
            _write(os.path.join(dpath, "boot_vga"), "%d\n" % (1 if o["bootVga"] else 0))
        if o["sriovNumvfs"] is not None:
            _write(os.path.join(dpath, "sriov_numvfs"), "%d\n" % o["sriovNumvfs"])
            _write(os.path.join(dpath, "sriov_totalvfs"), "%d\n" % o["sriovTotalvfs"])
            for k in range(o["sriovNumvfs"]):   # the kernel links each enabled VF (no device lock to read)
                os.symlink("../%s-vf%d" % (addr, k), os.path.join(dpath, "virtfn%d" % k))
        if o["driver"]:
            ddir = os.path.join(drv_root, o["driver"])
            _relink(ddir, os.path.join(dpath, "driver"))
            _relink(dpath, os.path.join(ddir, addr))
        if s["iommu"] and o["group"] is not None:
            gdir = J("sys/kernel/iommu_groups", str(o["group"]))
            if o["group"] not in groups:
                os.makedirs(os.path.join(gdir, "devices"))
                _write(os.path.join(gdir, "type"), "DMA\n")
                groups[o["group"]] = []
            groups[o["group"]].append(o)
            _relink(gdir, os.path.join(dpath, "iommu_group"))
            _relink(dpath, os.path.join(gdir, "devices", addr))
        if o["driver"] == "vfio-pci" and s["iommufd"] and s["iommu"] and o["group"] is not None:
            vd = os.path.join(dpath, "vfio-dev", "vfio%d" % vfio_index)
            os.makedirs(vd)
            _write(os.path.join(vd, "dev"), "%d:%d\n" % (s["vfioDevMajor"], vfio_index))
            _mknod(J("dev/vfio/devices", "vfio%d" % vfio_index), s["vfioDevMajor"], vfio_index)
            o["_vfioDev"] = vfio_index
            vfio_index += 1
        if o["driver"] == "nvidia" and o["nvidiaMinor"] is not None:
            m = o["nvidiaMinor"]
            gdir = J("proc/driver/nvidia/gpus", addr)
            os.makedirs(gdir)
            _write(os.path.join(gdir, "information"),
                   "Model: \t\t NVIDIA L40S\nIRQ:   \t\t %d\nGPU UUID: \t GPU-00000000-0000-0000-0000-%012x\n"
                   "Video BIOS: \t 95.02.5d.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
                   "DMA Mask: \t 0xfffffffffffff\nBus Location: \t %s\nDevice Minor: \t %d\n"
                   "GPU Excluded:\t No\n" % (16, m, addr, m))
            _write(os.path.join(gdir, "unbindLock"), "0\n")
            _mknod(J("dev/nvidia%d" % m), NVIDIA_MAJOR, m)
    if any(o["driver"] == "nvidia" for o in devs):
        _mknod(J("dev/nvidiactl"), NVIDIA_MAJOR, 255)
    # /dev/vfio/<g> for groups with a function on vfio-pci
    for g, members in sorted(groups.items()):
        if any(m["driver"] == "vfio-pci" for m in members):
            _mknod(J("dev/vfio", str(g)), s["vfioGroupMajor"], g % (1 << 20))

    # /proc
    _write(J("proc/cmdline"), s["cmdline"] + "\n")
    _write(J("proc/sys/kernel/random/boot_id"), s["bootId"] + "\n")
    procs = {1: {"comm": "systemd", "fds": []}}
    for o in devs:
        for h in o["holders"]:
            p = procs.setdefault(h["pid"], {"comm": h["comm"], "fds": []})
            p["fds"].append(J("dev/nvidia%d" % o["nvidiaMinor"]))
    for pid, p in sorted(procs.items()):
        pdir = J("proc", str(pid))
        os.makedirs(os.path.join(pdir, "fd"))
        _write(os.path.join(pdir, "comm"), p["comm"] + "\n")
        for fd in range(3):
            os.symlink(J("dev/null"), os.path.join(pdir, "fd", str(fd)))
        for i, target in enumerate(p["fds"]):   # fd 3, 4, ...: the held /dev/nvidia<minor> nodes
            os.symlink(target, os.path.join(pdir, "fd", str(3 + i)))
        if p["fds"] and any(o["driver"] == "nvidia" for o in devs):
            os.symlink(J("dev/nvidiactl"), os.path.join(pdir, "fd", str(3 + len(p["fds"]))))
    os.symlink("1", J("proc/self"))

    # the full spec for the simulated kernel
    out = copy.deepcopy(s)
    for o in out["devices"]:
        o["topoPath"] = o.pop("_topo")
        for k in [k for k in o if k.startswith("_")]:
            if k == "_vfioDev":
                o["vfioDev"] = o[k]
            del o[k]
    out["root"] = root
    with open(J(".sim/spec.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    return out


def main(argv):
    ap = argparse.ArgumentParser(prog="simnode.py", description="Build a simulated node's host-root tree.")
    ap.add_argument("root")
    ap.add_argument("spec", nargs="?", help="spec JSON file ('-' for standard input)")
    ap.add_argument("--preset", help="demo8 | vfio")
    ap.add_argument("--gpus", type=int, help="GPUs for the vfio preset (default 8)")
    a = ap.parse_args(argv)
    try:
        if (a.spec is None) == (a.preset is None):
            raise SpecError("give exactly one of SPEC.json or --preset NAME")
        if a.preset:
            spec = preset(a.preset, a.gpus)
        else:
            if a.gpus is not None:
                raise SpecError("--gpus applies to --preset only")
            with (sys.stdin if a.spec == "-" else open(a.spec)) as f:
                spec = json.load(f)
        build(a.root, spec)
    except SpecError as e:
        sys.stderr.write("simnode: %s\n" % e)
        return 2
    except (OSError, ValueError) as e:
        sys.stderr.write("simnode: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
