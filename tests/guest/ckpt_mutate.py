#!/usr/bin/env python3
"""Write damaged copies of a checkpoint whose JSON stays well-formed and well-typed.

    ckpt_mutate.py SRC_DIR OUT_DIR COUNT SEED

For each i in 0..COUNT-1, OUT_DIR/i/ gets a vm.json in which one value of the machine
state (vcpus, vm, devices) is replaced by another of the same JSON kind -- an integer by
another non-negative integer (bit flips, 0, all-ones, a random value), a boolean by its
opposite, a base64 blob (XSAVE) by the same blob with a bit flipped (half the time in its
first 576 bytes: the legacy area and the XSAVE header) -- and a hard link
(or copy) of SRC_DIR/memory.bin. OUT_DIR/i/mutation says what was changed. Such damage
passes the type checks, so it is the register and device values themselves that amber's
validation must judge: refuse them before anything is loaded, or accept only what KVM and
the devices then take (tests/guest/amber_ckpt_kvm_mutations.sh).
"""
import base64
import copy
import json
import os
import random
import shutil
import sys

SECTIONS = ("vcpus", "vm", "devices")


def leaves(node, path, out):
    if isinstance(node, dict):
        for k, v in node.items():
            leaves(v, path + [k], out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            leaves(v, path + [i], out)
    else:
        out.append(path)


def is_blob(s):
    if len(s) < 16 or len(s) % 4:
        return False
    try:
        base64.b64decode(s, validate=True)
        return True
    except ValueError:
        return False


def new_value(old, rng):
    if isinstance(old, bool):
        return not old
    if isinstance(old, int) or (isinstance(old, str) and old.isdigit()):
        v = int(old)
        choice = rng.randrange(6)
        if choice == 0:
            v ^= 1 << rng.randrange(64 if v >= 1 << 32 else 32)
        elif choice == 1:
            v ^= 1 << rng.randrange(64)
        elif choice == 2:
            v = 0
        elif choice == 3:
            v = (1 << rng.choice((8, 16, 32, 64))) - 1
        elif choice == 4:
            v = rng.getrandbits(rng.choice((8, 16, 32, 64)))
        else:
            v += rng.choice((1, -1)) if v else 1
        return v if v < 1 << 53 else str(v)
    if isinstance(old, str) and is_blob(old):
        raw = bytearray(base64.b64decode(old))
        # half the time in the first 576 bytes: XSAVE's legacy area (MXCSR) and header
        raw[rng.randrange(min(len(raw), 576) if rng.randrange(2) else len(raw))] ^= \
            1 << rng.randrange(8)
        return base64.b64encode(bytes(raw)).decode()
    return None


def main():
    src, out, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(os.path.join(src, "vm.json")) as f:
        doc = json.load(f)
    paths = []
    for s in SECTIONS:
        leaves(doc.get(s), [s], paths)
    rng = random.Random(seed)
    made = 0
    for _ in range(count * 20):
        if made == count:
            break
        path = rng.choice(paths)
        node = doc
        for p in path[:-1]:
            node = node[p]
        value = new_value(node[path[-1]], rng)
        if value is None or value == node[path[-1]]:
            continue
        d = copy.deepcopy(doc)
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
        where = os.path.join(out, str(made))
        os.makedirs(where)
        with open(os.path.join(where, "vm.json"), "w") as f:
            json.dump(d, f, indent=1)
        try:
            os.link(os.path.join(src, "memory.bin"), os.path.join(where, "memory.bin"))
        except OSError:
            shutil.copyfile(os.path.join(src, "memory.bin"), os.path.join(where, "memory.bin"))
        shown = value if not isinstance(value, str) or len(value) < 40 else "(blob, 1 bit)"
        with open(os.path.join(where, "mutation"), "w") as f:
            f.write("%s = %s\n" % ("".join("[%d]" % p if isinstance(p, int) else "." + p
                                           for p in path)[1:], json.dumps(shown)))
        made += 1
    return 0 if made == count else 1


if __name__ == "__main__":
    sys.exit(main())
