#!/usr/bin/env bash
# Prepares the build context of deploy/Containerfile from a built edgerelay:
#   deploy/container/stage.sh BINARY CONFIG CONTEXT_DIR
#   podman build -f deploy/Containerfile -t edgerelay:VERSION CONTEXT_DIR
# CONTEXT_DIR/rootfs gets the stripped binary as /edgerelay, exactly the shared libraries `ldd`
# lists for it (at the paths ldd prints, so the loader finds them without a cache), the CA
# bundle, /etc/passwd and /etc/group with the non-root user edgerelay (65532), an nsswitch.conf
# reading only files and DNS, and CONFIG as /etc/edgerelay/edgerelay.yaml. Nothing else: the
# image has no shell, so a missing file shows up as a failing `chroot rootfs /edgerelay check`.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 BINARY CONFIG CONTEXT_DIR" >&2
  exit 2
fi
binary=$1 config=$2 context=$3
for f in "$binary" "$config" /etc/ssl/certs/ca-certificates.crt; do
  [ -f "$f" ] || { echo "stage.sh: $f does not exist" >&2; exit 1; }
done
rootfs=$context/rootfs
if [ -e "$rootfs" ]; then
  echo "stage.sh: $rootfs exists; stage into an empty directory" >&2
  exit 1
fi
mkdir -p "$rootfs"

strip --strip-unneeded -o "$rootfs/edgerelay" "$binary"
chmod 0755 "$rootfs/edgerelay"

# ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
ldd_out=$(ldd "$binary")
if grep -q 'not found' <<<"$ldd_out"; then
  echo "stage.sh: ldd cannot resolve every library of $binary:" >&2
  echo "$ldd_out" >&2
  exit 1
fi
awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$ldd_out" | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done

# CA certificates where OpenSSL looks by default (OPENSSLDIR /usr/lib/ssl on Debian).
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/lib/ssl"
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
ln -s /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/lib/ssl/cert.pem"
ln -s /etc/ssl/certs "$rootfs/usr/lib/ssl/certs"

# A numeric non-root user, so Kubernetes' runAsNonRoot can verify it from the image.
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/:/sbin/nologin
edgerelay:x:65532:65532:edgerelay:/nonexistent:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
edgerelay:x:65532:
GROUP
cat >"$rootfs/etc/nsswitch.conf" <<'NSS'
passwd: files
group: files
hosts: files dns
NSS

mkdir -p "$rootfs/etc/edgerelay"
install -m 0644 "$config" "$rootfs/etc/edgerelay/edgerelay.yaml"
"$binary" --version | awk '{print $2; exit}' >"$context/VERSION"
echo "stage.sh: staged $(find "$rootfs" -type f | wc -l) files in $rootfs"
