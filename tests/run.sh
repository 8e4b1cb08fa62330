#!/usr/bin/env bash
# The project's test command: installs what the tests need from Debian's
# packages when it is missing, then runs the format check, clippy and every
# test target. Runnable from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)

if ((${#missing[@]} > 0)); then
    echo "run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The tests start their own redis-server on a unix socket; a system service
# that the package may have started is neither needed nor used.

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

# Every test process logs to this folder and records the secrets it handled
# (tests/support/logs.rs); the audit after the tests searches one for the
# other. Old files would mix another session into this one's audit.
export CHAT_TEST_LOG_DIR="${CHAT_TEST_LOG_DIR:-$PWD/target/test-logs}"
mkdir -p "$CHAT_TEST_LOG_DIR"
find "$CHAT_TEST_LOG_DIR" -maxdepth 1 -type f \( -name '*.log' -o -name '*.secrets' \) -delete

cargo test --workspace --all-targets
bash tests/audit_logs.sh "$CHAT_TEST_LOG_DIR"
