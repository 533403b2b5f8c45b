#!/usr/bin/env bash
# test_ca_cli.sh - integration test of the real `isoflow ca init|issue`:
# exact stdout, stderr and exit codes, the files written (modes, subjects,
# roles, validity, chain checked with the openssl command when present).
# Usage: tests/net/test_ca_cli.sh ISOFLOW_BIN
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 ISOFLOW_BIN" >&2
    exit 2
fi
bin=$1
. "$(dirname "$0")/../common/testlib.sh"

ca=$tmp/ca
check "init" 0 "wrote $ca/ca.key (CA private key, mode 0600: keep it secret)
wrote $ca/ca.crt (CA certificate, valid 10 years: give it to every node)" "" \
    -- "$bin" ca init "$ca" --name home
expect "ca.key mode" 600 "$(stat -c %a "$ca/ca.key")"
expect "ca.crt mode" 644 "$(stat -c %a "$ca/ca.crt")"
check "init again" 1 "" "isoflow: ca init: a CA already exists in '$ca' (ca.key present)" \
    -- "$bin" ca init "$ca"

for role in device edge cloud operator; do
    check "issue $role" 0 "wrote $tmp/nodes/n-$role.key (private key, mode 0600)
wrote $tmp/nodes/n-$role.crt (CN=n-$role, OU=role:$role, valid 825 days, signed by $ca/ca.crt)" "" \
        -- "$bin" ca issue "$ca" "n-$role" --role "$role" --out "$tmp/nodes"
    expect "n-$role.key mode" 600 "$(stat -c %a "$tmp/nodes/n-$role.key")"
done
check "issue --days, default out" 0 "wrote $ca/op.key (private key, mode 0600)
wrote $ca/op.crt (CN=op, OU=role:operator, valid 30 days, signed by $ca/ca.crt)" "" \
    -- "$bin" ca issue "$ca" op --days 30 --role operator

if command -v openssl >/dev/null; then
    expect "CA subject" "subject=CN = home isoflow CA" \
        "$(openssl x509 -in "$ca/ca.crt" -noout -subject)"
    expect "edge subject" "subject=OU = role:edge, CN = n-edge" \
        "$(openssl x509 -in "$tmp/nodes/n-edge.crt" -noout -subject)"
    expect "edge issuer" "issuer=CN = home isoflow CA" \
        "$(openssl x509 -in "$tmp/nodes/n-edge.crt" -noout -issuer)"
    expect "chain" "$tmp/nodes/n-cloud.crt: OK" \
        "$(openssl verify -CAfile "$ca/ca.crt" "$tmp/nodes/n-cloud.crt" 2>&1)"
    expect "key type" "ED25519" \
        "$(openssl pkey -in "$tmp/nodes/n-device.key" -noout -text 2>/dev/null |
            head -1 | awk '{print $1}')"
    # 30 days: valid in 29, expired in 31.
    expect "valid 29 days" "Certificate will not expire" \
        "$(openssl x509 -in "$ca/op.crt" -noout -checkend $((29 * 86400)))"
    expect "expired in 31 days" "Certificate will expire" \
        "$(openssl x509 -in "$ca/op.crt" -noout -checkend $((31 * 86400)))"
fi

# Failures (exit 1) and usage errors (exit 2).
check "issue existing" 1 "" \
    "isoflow: ca issue: '$tmp/nodes/n-edge.key' already exists (remove it to issue a new certificate)" \
    -- "$bin" ca issue "$ca" n-edge --role edge --out "$tmp/nodes"
check "issue no CA" 1 "" \
    "isoflow: ca issue: cannot read CA certificate '$tmp/none/ca.crt': No such file or directory" \
    -- "$bin" ca issue "$tmp/none" x --role edge
check "issue bad name" 1 "" \
    "isoflow: ca issue: invalid name '../x' (1 to 63 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit)" \
    -- "$bin" ca issue "$ca" ../x --role edge
check "issue no role" 2 "" \
    "isoflow: ca issue needs --role (device, edge, cloud or operator)" \
    -- "$bin" ca issue "$ca" x
check "issue bad role" 2 "" \
    "isoflow: unknown role 'king' (device, edge, cloud or operator)" \
    -- "$bin" ca issue "$ca" x --role king
check "issue bad days" 2 "" \
    "isoflow: option '--days': N must be from 1 to 36500, got '0'" \
    -- "$bin" ca issue "$ca" x --role edge --days 0
check "issue days junk" 2 "" \
    "isoflow: option '--days': N must be from 1 to 36500, got '5x'" \
    -- "$bin" ca issue "$ca" x --role edge --days 5x
check "issue missing value" 2 "" "isoflow: option '--out' needs a value" \
    -- "$bin" ca issue "$ca" x --role edge --out
check "issue extra arg" 2 "" \
    "isoflow: ca issue takes a CA directory and a name (extra 'y')" \
    -- "$bin" ca issue "$ca" x y --role edge
check "init bad option" 2 "" \
    "isoflow: unknown option '--force' (see 'isoflow ca init --help')" \
    -- "$bin" ca init "$tmp/c2" --force
check "unknown subcommand" 2 "" \
    "isoflow: unknown ca command 'list' (init or issue; see 'isoflow ca --help')" \
    -- "$bin" ca list
expect "nothing written by refusals" "" "$(ls "$tmp" | grep -v -e '^ca$' -e '^nodes$' -e '^stdout$' -e '^stderr$')"

# Help texts: exit 0 on stdout; without arguments: usage on stderr, exit 2.
for args in "ca --help" "ca init --help" "ca issue --help" "help ca"; do
    # shellcheck disable=SC2086
    "$bin" $args >"$tmp/stdout" 2>"$tmp/stderr"
    rc=$?
    if [ $rc -eq 0 ] && grep -q '^usage: isoflow ca' "$tmp/stdout" &&
        [ ! -s "$tmp/stderr" ]; then ok; else bad "help: $args" "rc $rc"; fi
done
"$bin" ca issue "$ca" >"$tmp/stdout" 2>"$tmp/stderr"
expect "issue without name: exit" 2 $?
expect "issue without name: usage" "usage: isoflow ca issue DIR NAME --role ROLE [--days N] [--out OUTDIR]" \
    "$(head -1 "$tmp/stderr")"
"$bin" ca >"$tmp/stdout" 2>"$tmp/stderr"
expect "ca alone: exit" 2 $?
"$bin" --help | grep -q '^  ca ' && ok || bad "ca listed in isoflow --help"

finish cli-ca
