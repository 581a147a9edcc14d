# .ci/apt.sh: sourced by .ci/run and .ci/slurm.
#
# apt_install PKG…: installs Debian packages. The package lists are
# refreshed first, once per CI run (APT_UPDATED is exported to the scripts
# this one starts), and only when something must be installed: on a fresh
# machine the lists may be old or empty ("Unable to locate package", or a
# 404 for a package updated since).
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    echo "== apt-get update (installing $*)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    export APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null
}
