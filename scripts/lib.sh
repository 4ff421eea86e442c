# Shell helpers shared by scripts/test.sh and scripts/cluster.sh. Source it; it sets nothing.

# Whether something listens on host $1, port $2.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# The path of a PostgreSQL server binary (initdb, pg_ctl), on PATH or in Debian's versioned
# directory.
find_pg_bin() {
  command -v "$1" 2>/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}

# initdb and the server refuse to run as root; run them as the postgres user then.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Installs haproxy (the local balancer) from Debian's packages where missing and possible.
# Fails, saying what to install, where it cannot.
ensure_haproxy() {
  command -v haproxy >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf 'installing haproxy (Debian package)\n' >&2
    # Under a lock: clusters started in parallel (tests run outside scripts/test.sh) would
    # otherwise race for dpkg's lock, and the loser would fail at once.
    ( flock 9
      command -v haproxy >/dev/null 2>&1 && exit 0
      apt-get install -y -qq haproxy >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }
    ) 9>/tmp/super-channels-apt.lock
  fi
  command -v haproxy >/dev/null 2>&1 || { printf 'haproxy is needed as the balancer: apt-get install haproxy\n' >&2; return 1; }
}
