#!/usr/bin/env bash
# The README's two commands (`make test`, `make demo`) in a fresh Debian 13 (trixie) root, as a new
# user on a fresh machine would run them: QGIS 3.40, Python 3.13, numpy 2 from trixie, or QGIS 3.44
# from trixie-backports with BACKPORTS=1; then the demo project opened in a real QGIS window, offline,
# and the messages it shows listed (step "project": there must be none). Run as root:
#     make check-debian13 [BACKPORTS=1] [STEPS="test demo project"] [ROOT=/var/tmp/stars-trixie]
# The root is made once with debootstrap from the Debian archive this machine's apt uses (MIRROR=URL
# to choose another) and kept (a later run reuses it;
# `rm -rf` it for a fresh one); the project is cloned into it from this checkout's HEAD. Logs and
# timings go to build/debian13/<qgis version>/. Not part of `make test` (minutes, and root).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
suffix=""; [ "${BACKPORTS:-0}" = 1 ] && suffix=-backports
ROOT=${ROOT:-/var/tmp/stars-trixie$suffix}
apt_mirror() {  # the Debian archive this machine's apt already uses: deb822 .sources, else one-line lists
    local uri
    uri=$(grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
          | grep -E '/debian/?$' | head -n 1 || true)
    [ -n "$uri" ] || uri=$(grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          2>/dev/null | sed -E 's/\[[^]]*\]//' | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
    echo "$uri"
}
MIRROR=${MIRROR:-$(apt_mirror)}
[ -n "$MIRROR" ] || { echo "debian13_check: no Debian archive in /etc/apt/sources.list*: give MIRROR=URL" >&2; exit 2; }
STEPS=${STEPS-test demo project}
[ "$(id -u)" -eq 0 ] || { echo "debian13_check: run as root (debootstrap and chroot need it)" >&2; exit 2; }

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap; }
    echo "debian13_check: debootstrap trixie into $ROOT"
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# torchrun's rendezvous resolves localhost and the host name: without them in /etc/hosts it hangs
grep -qw localhost "$ROOT/etc/hosts" 2>/dev/null || echo "127.0.0.1 localhost" >> "$ROOT/etc/hosts"
grep -qw "$(hostname)" "$ROOT/etc/hosts" 2>/dev/null || echo "127.0.0.1 $(hostname)" >> "$ROOT/etc/hosts"
mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for fs in proc sys dev dev/pts; do
    mountpoint -q "$ROOT/$fs" || { mount --bind "/$fs" "$ROOT/$fs"; mounted+=("$ROOT/$fs"); }
done

# this machine's certificate authorities (a proxy that inspects TLS signs with its own) and proxy settings
mkdir -p "$ROOT/etc/ssl"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/host-ca-certificates.crt" 2>/dev/null || true
passed=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
        DEBIAN_FRONTEND=noninteractive)
[ -f "$ROOT/etc/ssl/host-ca-certificates.crt" ] && passed+=(PIP_CERT=/etc/ssl/host-ca-certificates.crt)
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
           PIP_RETRIES PIP_TIMEOUT; do
    [ -n "${!var:-}" ] && passed+=("$var=${!var}")
done
inside() { chroot "$ROOT" /usr/bin/env -i "${passed[@]}" bash -c "$1"; }
inside "apt-get update -qq && apt-get install -y -qq git make ca-certificates sudo >/dev/null"
if [ "${BACKPORTS:-0}" = 1 ]; then
    inside "echo 'deb $MIRROR trixie-backports main' > /etc/apt/sources.list.d/backports.list && apt-get update -qq &&
            apt-get install -y -qq -t trixie-backports qgis python3-qgis qgis-providers >/dev/null"
fi
# the project as a fresh clone of this checkout's HEAD, with shared/ beside it when there is one
rm -rf "$ROOT/work/main"
mkdir -p "$ROOT/work"
git clone -q "$REPO" "$ROOT/work/main"
[ -d "$REPO/../shared" ] && { rm -rf "$ROOT/work/shared"; cp -r "$REPO/../shared" "$ROOT/work/shared"; }

versions=$(inside "dpkg-query -W -f='\${Version}' qgis 2>/dev/null || echo none")
out="$REPO/build/debian13/qgis-${versions%%+*}"
mkdir -p "$out"
for step in $STEPS; do
    echo "debian13_check: $step (log: $out/$step.log)"
    start=$(date +%s)
    set +e
    if [ "$step" = project ]; then  # a fresh profile, no network: what the demo project shows when opened
        inside "cd /work/main && export QGIS_CUSTOM_CONFIG_PATH=\$(mktemp -d) STARS_MESSAGES_OUT=/work/messages.txt &&
                xvfb-run -a -s '-screen 0 1280x800x24' qgis --nologo --noversioncheck \
                --code scripts/project_messages.py demo_out/stars_demo.qgz" > "$out/$step.log" 2>&1
        rc=$?
        cp "$ROOT/work/messages.txt" "$out/project_messages.txt" 2>/dev/null
        echo "project messages: $(cat "$out/project_messages.txt" 2>/dev/null | wc -l)" | tee -a "$out/summary.txt"
    else
        inside "cd /work/main && make $step" > "$out/$step.log" 2>&1
        rc=$?
    fi
    set -e
    echo "$step: rc $rc, $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
done
inside "cd /work/main && .venv/bin/python -c 'import sys, numpy, torch, qgis.core as q, osgeo, rasterio, shapely;
print(\"Debian\", open(\"/etc/debian_version\").read().strip(), \"| QGIS\", q.Qgis.QGIS_VERSION, \"| Python\", sys.version.split()[0],
      \"| numpy\", numpy.__version__, \"| torch\", torch.__version__, \"| GDAL\", osgeo.__version__,
      \"| rasterio\", rasterio.__version__, \"| shapely\", shapely.__version__)'" | tee -a "$out/summary.txt"
