#!/usr/bin/env bash
# A new user's install, checked: TARGET (a built wheel, or a source folder as in `pip install .`)
# goes into a fresh virtual environment, not editable, and the commands README names run from an
# empty folder outside the checkout, so nothing can be found by looking in the source tree.
#
#   .ci/install_smoke.sh VENV TARGET      # VENV must not exist yet; PYTHON picks the interpreter
#
# Checks: promptlab --help, vocab list (the bundled vocabulary), demo (the bundled example on the
# micro models), analyze demo, and the dashboard: `promptlab dashboard` serves its health endpoint
# and page, and its app script runs the Home and Run pages without an error (Run lists the bundled
# examples). Exits non-zero, saying which check failed, if any does.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 VENV TARGET" >&2
    exit 2
fi
venv=$1
target=$(realpath "$2")
if [ -e "$venv" ]; then
    echo "$venv exists; give a new folder so the install is a fresh one" >&2
    exit 2
fi

fail() {
    echo "install smoke test FAILED: $*" >&2
    exit 1
}

"${PYTHON:-python3}" -m venv "$venv"
venv=$(realpath "$venv")
echo "+ $venv/bin/pip install $target"
"$venv/bin/pip" install -q "$target"

work=$(mktemp -d)
dashboard_pid=""
cleanup() {
    if [ -n "$dashboard_pid" ]; then
        kill -TERM -- "-$dashboard_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export PROMPTLAB_HOME="$work/home" PROMPTLAB_CACHE="$work/cache"
unset PROMPTLAB_DB PROMPTLAB_VOCAB PYTHONPATH
promptlab="$venv/bin/promptlab"

run() {
    echo "+ promptlab $*"
    local rc=0
    "$promptlab" "$@" >"$work/out" 2>"$work/err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$work/out" "$work/err" >&2
        fail "promptlab $* exited $rc"
    fi
    cat "$work/out"
}

location=$("$venv/bin/python" -c "import promptlab; print(promptlab.__file__)")
case "$location" in
    "$venv"/*) echo "promptlab imported from $location" ;;
    *) fail "promptlab was imported from $location, not from the install in $venv" ;;
esac

run --help >/dev/null
run vocab list
grep -q '^style ' "$work/out" || fail "vocab list does not show the bundled 'style' category"
run demo
grep -q '48 rendered, 0 already done, 0 failed of 48 cells' "$work/err" "$work/out" \
    || { cat "$work/err" >&2; fail "demo did not render its 48 cells"; }
run analyze demo
grep -q '^Effects' "$work/out" || fail "analyze demo printed no effects"

port=$("$venv/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
echo "+ promptlab dashboard --port $port"
setsid "$promptlab" dashboard --port "$port" >"$work/dashboard.log" 2>&1 &
dashboard_pid=$!
for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$port/_stcore/health" >/dev/null; then
        break
    fi
    kill -0 "$dashboard_pid" 2>/dev/null || { cat "$work/dashboard.log" >&2; fail "promptlab dashboard exited"; }
    sleep 1
done
curl -sf "http://127.0.0.1:$port/_stcore/health" >/dev/null || { cat "$work/dashboard.log" >&2; fail "dashboard health endpoint never answered"; }
curl -sf "http://127.0.0.1:$port/" -o "$work/page.html" || fail "dashboard page did not load"
grep -qi '<title>' "$work/page.html" || fail "dashboard page has no title: $(head -c 200 "$work/page.html")"
echo "dashboard answered on http://127.0.0.1:$port/ (health: ok)"
kill -TERM -- "-$dashboard_pid"
wait "$dashboard_pid" 2>/dev/null || true
dashboard_pid=""

echo "+ the installed app script: Home and Run pages"
"$venv/bin/python" - <<'EOF' || fail "the dashboard's pages raised or showed an error"
from streamlit import config
from streamlit.testing.v1 import AppTest

from promptlab.paths import dashboard_app, examples_dir

config.set_option("server.address", "127.0.0.1")
home = AppTest.from_file(str(dashboard_app()), default_timeout=120).run()
run = AppTest.from_string("from promptlab.dashboard import run\nrun.page()", default_timeout=120).run()
for name, at in (("Home", home), ("Run", run)):
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    assert not problems, f"{name}: {problems}"
listed = run.selectbox[0].options
assert str(examples_dir() / "demo.toml") in listed, f"Run lists {listed}, not the bundled demo.toml"
print(f"Home: {[t.value for t in home.title]}, {len(home.dataframe)} table; Run lists {len(listed)} example files")
EOF
echo "install smoke test passed"
