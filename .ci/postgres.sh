# Sourced by .ci/run (and usable by hand): a private PostgreSQL server for the tests.
#   pg_start   initdb a throw-away cluster in a temp folder, start it on a Unix socket and
#              127.0.0.1:$PGPORT, create role/database imssim (CREATEDB: the tests make one
#              database each), export IMSSIM_TEST_PG_URL
#   pg_stop    stop it and remove the folder
# As root the server runs as the 'postgres' user the Debian package creates.
PGPORT="${PGPORT:-54329}"

_pg_bin() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ]; then pg_config --bindir; return; fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

_pg_as() {  # run a command as the server's owner
    if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
    PGBIN="$(_pg_bin)"
    if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
        echo "pg_start: no PostgreSQL server binaries found (apt-get install postgresql)" >&2; return 1
    fi
    PGTMP="$(mktemp -d /tmp/imssim-pg.XXXXXX)"
    chmod 755 "$PGTMP"
    if [ "$(id -u)" = "0" ]; then chown postgres: "$PGTMP"; fi
    _pg_as "$PGBIN/initdb" -D "$PGTMP/data" -U postgres -A trust --no-sync >/dev/null
    _pg_as "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w -t 60 \
        -o "-p $PGPORT -k $PGTMP -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
    _pg_as "$PGBIN/psql" -h "$PGTMP" -p "$PGPORT" -U postgres -qtA -c \
        "CREATE ROLE imssim LOGIN CREATEDB PASSWORD 'imssim'" -c "CREATE DATABASE imssim OWNER imssim" postgres >/dev/null
    export IMSSIM_TEST_PG_URL="postgresql://imssim:imssim@127.0.0.1:$PGPORT/imssim"
    export PGBIN PGTMP
    echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') for the tests at 127.0.0.1:$PGPORT"
}

pg_stop() {
    if [ -n "${PGTMP:-}" ] && [ -d "$PGTMP/data" ]; then
        _pg_as "$PGBIN/pg_ctl" -D "$PGTMP/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$PGTMP"
    fi
}
