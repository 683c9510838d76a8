#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""ext4_of_dir.py DIR IMG: IMG, an ext4 image holding DIR's files, for a guest
that mounts it read-only between power-ons.

The first time (or when IMG or its listing IMG.files is missing) the image is
made whole with mke2fs -d.  After that only what changed in DIR is written into
it in place, with one debugfs run: files added or whose content changed, new
folders, files and folders removed.  A file counts as changed by its content
(SHA-256), not its time: every new bundle refreshes the times of the chunks it
names, and rewriting those thousands of files would cost more than mke2fs.
Every file written is read back from the image in a second debugfs run and
compared, every file removed looked for, and e2fsck checks the whole; anything
that does not check (a full image, an odd name, a debugfs error) makes the
image whole again.  The listing names the image it describes (size, time,
inode): an image something else wrote to or made is made whole again too.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def listing(top, old):
    """{rel: None} for folders, {rel: [size, mtime_ns, ino, sha256]} for files;
    a file's digest is taken from old when its size, time and inode are too."""
    out = {}
    for root, dirs, names in os.walk(top):
        rel = os.path.relpath(root, top)
        rel = "" if rel == "." else rel
        if rel:
            out[rel] = None
        for n in names:
            p = os.path.join(root, n)
            st = os.lstat(p)
            key = os.path.join(rel, n)
            prev = old.get(key)
            if prev and prev[:3] == [st.st_size, st.st_mtime_ns, st.st_ino]:
                out[key] = prev
            else:
                out[key] = [st.st_size, st.st_mtime_ns, st.st_ino, sha256(p)]
    return out


def debugfs(img, cmds, tmp):
    script = os.path.join(tmp, "cmds")
    with open(script, "w") as f:
        f.write("".join(c + "\n" for c in cmds))
    subprocess.run(["debugfs", "-w", "-f", script, img], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)


def in_place(top, img, old, new):
    """True if IMG now holds NEW, written in place; False: make it whole."""
    if any(c in k for k in new for c in ' \t\n"\\'):
        return False

    def is_file(d, k):
        return d.get(k) is not None

    def is_dir(d, k):
        return k in d and d[k] is None

    # files to remove (gone, or rewritten), folders to remove and to make,
    # files to write; removed folders deepest first, new ones parents first
    gone = sorted(k for k in old if is_file(old, k) and
                  (not is_file(new, k) or new[k][3] != old[k][3]))
    gone_dirs = sorted((k for k in old if is_dir(old, k) and not is_dir(new, k)), reverse=True)
    made = sorted(k for k in new if is_dir(new, k) and not is_dir(old, k))
    changed = sorted(k for k in new if is_file(new, k) and
                     (not is_file(old, k) or old[k][3] != new[k][3]))
    if not (gone or gone_dirs or made or changed):
        return True
    cmds = []
    for k in gone:
        cmds += ["cd /" + os.path.dirname(k), "rm " + os.path.basename(k)]
    # (debugfs's rmdir takes a name in the current folder: given a path, it
    # frees the folder and leaves its entry)
    for k in gone_dirs:
        cmds += ["cd /" + os.path.dirname(k), "rmdir " + os.path.basename(k)]
    for k in made:
        cmds += ["cd /" + os.path.dirname(k), "mkdir " + os.path.basename(k)]
    for k in changed:
        cmds += ["cd /" + os.path.dirname(k), "write %s %s" % (os.path.join(top, k), os.path.basename(k))]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            debugfs(img, cmds, tmp)
            back = os.path.join(tmp, "back")
            os.mkdir(back)
            removed = [k for k in gone if k not in changed]
            debugfs(img, ["dump /%s %s/%d" % (k, back, i) for i, k in enumerate(changed)] +
                    ["dump /%s %s/gone-%d" % (k, back, i) for i, k in enumerate(removed)], tmp)
        except subprocess.CalledProcessError:
            return False
        if any(os.path.exists("%s/gone-%d" % (back, i)) for i in range(len(removed))):
            return False
        for i, k in enumerate(changed):
            p = os.path.join(back, str(i))
            if not os.path.exists(p) or sha256(p) != new[k][3]:
                return False
    # and the file system as a whole is sound
    return subprocess.run(["e2fsck", "-fn", img], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def whole(top, img, new):
    kb = sum((v[0] + 4095) // 4096 * 4 for v in new.values() if v is not None)
    if os.path.exists(img):
        os.unlink(img)
    # room for the releases a suite adds later, written in place
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", top, img, "%dk" % (kb * 2 + 65536)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def identity(img):
    st = os.stat(img)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def main():
    top, img = sys.argv[1], sys.argv[2]
    state = img + ".files"
    old = None
    if os.path.exists(img) and os.path.exists(state):
        with open(state) as f:
            saved = json.load(f)
        if saved["image"] == identity(img):
            old = saved["files"]
    new = listing(top, old or {})
    if os.path.exists(state):
        os.unlink(state)                 # no listing while the image changes
    if old is None or not in_place(top, img, old, new):
        whole(top, img, new)
    with open(state + ".tmp", "w") as f:
        json.dump({"image": identity(img), "files": new}, f)
    os.replace(state + ".tmp", state)


if __name__ == "__main__":
    main()
