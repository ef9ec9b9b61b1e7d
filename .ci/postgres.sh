# Start a throwaway PostgreSQL server on loopback for the store's real-server test.
# Sets PROMPTLAB_TEST_POSTGRES_URL. Needs Debian's postgresql and root (initdb runs as postgres).
start_postgres() {
    local bin data port=54329
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    data=$(mktemp -d /tmp/promptlab-pg.XXXXXX)
    chown postgres "$data"
    su postgres -c "$bin/initdb -D $data -A trust -U postgres" >/dev/null
    su postgres -c "$bin/pg_ctl -D $data -l $data/server.log -w -o '-k $data -p $port -c listen_addresses=127.0.0.1' start" >/dev/null
    su postgres -c "$bin/psql -h 127.0.0.1 -p $port -U postgres -qc 'CREATE DATABASE promptlab_test'" >/dev/null
    PROMPTLAB_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/promptlab_test"
}
