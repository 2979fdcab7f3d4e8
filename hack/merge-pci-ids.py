#!/usr/bin/env python3
"""merge-pci-ids.py BASE EXTRA [OUT] — lay the device lines of EXTRA over the pci.ids file BASE.

For every vendor section in EXTRA, each device line ("\\tDDDD  name") replaces the name of that device in BASE's
section of the same vendor (its subsystem lines are kept) or is inserted there in id order; a vendor missing
from BASE is appended before the class list. Comments in EXTRA are dropped; everything else in BASE is kept
byte for byte. Writes to OUT (default stdout). Used by deploy/Containerfile to build the image's pci.ids.
"""
import re
import sys

VENDOR_RE = re.compile(r'^([0-9a-f]{4})  (.+)$')
DEVICE_RE = re.compile(r'^\t([0-9a-f]{4})  (.+)$')


def parse_extra(lines):
    """{vendor: (vendor_line, {device: name})}, in file order."""
    out = {}
    vendor = None
    for n, line in enumerate(lines, 1):
        line = line.rstrip('\n')
        if not line.strip() or line.startswith('#'):
            continue
        m = VENDOR_RE.match(line)
        if m:
            vendor = m.group(1)
            out.setdefault(vendor, (line, {}))
            continue
        m = DEVICE_RE.match(line)
        if m and vendor is not None:
            out[vendor][1][m.group(1)] = m.group(2)
            continue
        raise ValueError("extra line %d: expected a vendor or a device line, got %r" % (n, line))
    return out


def merge(base_lines, extra):
    out = []
    pending = {v: dict(devs) for v, (_, devs) in extra.items()}
    vendor = None

    def flush_before(dev_id):
        # insert the extra devices of the current vendor whose id sorts before dev_id (None: all left)
        devs = pending.get(vendor)
        if not devs:
            return
        for d in sorted(devs):
            if dev_id is None or d < dev_id:
                out.append('\t%s  %s\n' % (d, devs.pop(d)))

    for raw in base_lines:
        line = raw.rstrip('\n')
        m = VENDOR_RE.match(line)
        if m or line.startswith('C '):
            flush_before(None)
            vendor = m.group(1) if m else None
            if line.startswith('C '):
                # the class list follows the vendors: vendors only EXTRA knows go before it
                for v, (vline, _) in extra.items():
                    if pending.get(v):
                        out.append(vline + '\n')
                        vendor = v
                        flush_before(None)
                vendor = None
            out.append(raw if raw.endswith('\n') else raw + '\n')
            continue
        m = DEVICE_RE.match(line)
        if m and vendor in pending:
            flush_before(m.group(1))
            if m.group(1) in pending[vendor]:
                out.append('\t%s  %s\n' % (m.group(1), pending[vendor].pop(m.group(1))))
                continue
        out.append(raw if raw.endswith('\n') else raw + '\n')
    flush_before(None)
    for v, (vline, _) in extra.items():
        if pending.get(v):
            out.append(vline + '\n')
            vendor = v
            flush_before(None)
    return out


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write("usage: merge-pci-ids.py BASE EXTRA [OUT]\n")
        return 2
    with open(argv[1], encoding='utf-8', errors='surrogateescape') as f:
        base = f.readlines()
    with open(argv[2], encoding='utf-8') as f:
        extra = parse_extra(f.readlines())
    merged = merge(base, extra)
    header = "# vfio-gpu-plugin: %s with the device names of %s laid over it\n" % (argv[1], argv[2])
    text = header + ''.join(merged)
    if len(argv) == 4:
        with open(argv[3], 'w', encoding='utf-8', errors='surrogateescape') as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
