#!/usr/bin/env bash
# The log audit of a whole test session: fails when any secret the test
# harness recorded (tests/support/logs.rs) appears in any log the session
# wrote, naming the kind of secret and the file, never the secret itself.
# It also fails when the capture looks broken (no logs, empty logs, lines
# that every session must produce missing, too few secrets recorded), so
# that a capture that saw nothing cannot pass.
#
# Usage: tests/audit_logs.sh <log folder>
set -euo pipefail

# Every full session records thousands; a few hundred is a floor that only
# a broken capture falls under.
MIN_SECRETS=300

dir=${1:?usage: audit_logs.sh <log folder>}
export LC_ALL=C

fail() {
    echo "log audit: $*" >&2
    exit 1
}

shopt -s nullglob
logs=("$dir"/*.log)
secrets=("$dir"/*.secrets)
((${#logs[@]} > 0)) || fail "no log files in $dir"
((${#secrets[@]} > 0)) || fail "no secrets files in $dir"

lines=$(cat "${logs[@]}" | wc -l)
((lines > 0)) || fail "the logs in $dir are empty"

# Lines every session writes: access-log lines and sign-in events. Without
# them the logs do not show what the app logs.
for marker in 'request done status=' 'security event event="register"' \
    'security event event="login"' 'security event event="login_failed"'; do
    grep -qF -- "$marker" "${logs[@]}" || fail "no '$marker' line in the logs"
done

# Each secret has exactly one base64 form: counting those counts secrets.
recorded=$(awk -F'\t' '$2 == "base64" { print $3 }' "${secrets[@]}" | sort -u | wc -l)
((recorded >= MIN_SECRETS)) ||
    fail "only $recorded secrets recorded (at least $MIN_SECRETS expected): is the capture broken?"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# form -> kind, one pattern per line for grep.
awk -F'\t' 'NF >= 3 && $3 != "" { print $1 "\t" $3 }' "${secrets[@]}" | sort -u >"$work/kinds"
cut -f2- "$work/kinds" | sort -u >"$work/patterns"

# grep exits 1 when nothing matches: the good outcome.
status=0
grep -HoF -f "$work/patterns" "${logs[@]}" >"$work/hits" || status=$?
((status <= 1)) || fail "grep failed with status $status"

if [[ -s $work/hits ]]; then
    echo "log audit: secrets found in the logs (kind, file, count):" >&2
    # The hit lines hold the secret itself: only its kind is printed.
    awk -F'\t' '
        NR == FNR { kind[$2] = $1; next }
        {
            i = index($0, ":")
            file = substr($0, 1, i - 1)
            form = substr($0, i + 1)
            k = (form in kind) ? kind[form] : "unknown"
            print k "\t" file
        }' "$work/kinds" "$work/hits" | sort | uniq -c >&2
    exit 1
fi

echo "log audit: $lines log lines from ${#logs[@]} processes, $recorded secrets recorded, none found"
