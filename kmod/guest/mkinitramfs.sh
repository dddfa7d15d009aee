#!/bin/sh
# mkinitramfs.sh KVER OUT FILE...: the initramfs of the test guest, an
# uncompressed newc cpio (the kernel unpacks it faster than a gzip under
# TCG): busybox, init, the programs and modules given, and the virtio modules
# of Debian's kernel that the relay's port needs, in load order
# (lib/modules/order, one name a line, dependencies first).
set -eu
kver=$1 out=$2
shift 2
moddir=/lib/modules/$kver
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/lib/modules"
cp /bin/busybox "$root/bin/"
for file; do
    case $file in
    *.ko) cp "$file" "$root/lib/modules/" ;;
    */init) cp "$file" "$root/init" ;;
    *) cp "$file" "$root/bin/" ;;
    esac
done
: > "$root/lib/modules/order"
for module in virtio_pci virtio_console; do
    line=$(grep "/$module\.ko:" "$moddir/modules.dep") || {
        echo "mkinitramfs: no $module.ko in $moddir/modules.dep" >&2
        exit 1
    }
    # modules.dep lists what a module needs last-loaded-first.
    for path in $(echo "${line#*:}" | tr ' ' '\n' | tac) "${line%%:*}"; do
        name=$(basename "$path" .ko)
        grep -qx "$name" "$root/lib/modules/order" && continue
        cp "$moddir/$path" "$root/lib/modules/"
        echo "$name" >> "$root/lib/modules/order"
    done
done
(cd "$root" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) > "$out"
