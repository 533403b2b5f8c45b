#!/usr/bin/env bash
# test_deploy_cli.sh - integration test of the real `isoflow key gen`,
# `isoflow sign` and `isoflow verify`: exact stdout, stderr and exit codes,
# key file modes, and every rejection reason (unsigned, tampered, unknown
# key, bad signature, malformed signature).
# Usage: tests/deploy/test_deploy_cli.sh ISOFLOW_BIN
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 ISOFLOW_BIN" >&2
    exit 2
fi
bin=$1
. "$(dirname "$0")/../common/testlib.sh"

cd "$tmp" || exit 1
printf '\x00asm\x01\x00\x00\x00' >m.wasm
sha=$(sha256sum m.wasm | cut -d' ' -f1)

# key gen
"$bin" key gen rel --dir keys >"$tmp/stdout" 2>"$tmp/stderr"
expect "key gen: exit" 0 $?
id=$(sed -n 's/^key id //p' "$tmp/stdout")
expect "key gen: id is 32 hex" 1 "$(printf %s "$id" | grep -cE '^[0-9a-f]{32}$')"
expect "key gen: output" "wrote keys/rel.key (private key, mode 0600: keep it secret)
wrote keys/rel.pub (public key: give it to the nodes that trust it)
key id $id" "$(cat "$tmp/stdout")"
expect "rel.key mode" 600 "$(stat -c %a keys/rel.key)"
expect "rel.pub mode" 644 "$(stat -c %a keys/rel.pub)"
# The id is the SHA-256 of the raw public key (the last 32 bytes of the DER).
if command -v openssl >/dev/null; then
    want=$(openssl pkey -pubin -in keys/rel.pub -outform DER | tail -c 32 |
        sha256sum | cut -c1-32)
    expect "key id = sha256(raw public key)[:16]" "$want" "$id"
fi
check "key gen again" 1 "" "isoflow: key gen: 'keys/rel.key' already exists (not overwritten)" \
    -- "$bin" key gen rel --dir keys
check "key gen bad name" 1 "" "isoflow: key gen: invalid key name 'a/b' (1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit)" \
    -- "$bin" key gen --dir keys a/b
"$bin" key gen other --dir other >/dev/null 2>&1
oid=$("$bin" sign other/other.key m.wasm -o other.sig | sed 's/.*key \([0-9a-f]*\))$/\1/')

# sign
check "sign" 0 "wrote m.wasm.sig (module $sha, 8 bytes, key $id)" "" \
    -- "$bin" sign keys/rel.key m.wasm --stage co2 --version 3
expect "sig lines" "isoflow-signature 1
key $id
sha256 $sha
size 8
stage co2
version 3" "$(head -6 m.wasm.sig)"
check "sign bad version" 2 "" "isoflow: option '--version': N must be from 1 to 999999999999, got '0'" \
    -- "$bin" sign keys/rel.key m.wasm --version 0
check "sign bad stage" 2 "" "isoflow: invalid stage name 'a/b' (1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit)" \
    -- "$bin" sign keys/rel.key m.wasm --stage a/b
check "sign with a public key" 1 "" "isoflow: sign: 'keys/rel.pub' is not an Ed25519 private key (PEM)" \
    -- "$bin" sign keys/rel.pub m.wasm
check "sign missing file" 1 "" "isoflow: sign: cannot read 'nope.wasm': No such file or directory" \
    -- "$bin" sign keys/rel.key nope.wasm

# verify
check "verify ok" 0 "m.wasm: ok (key rel $id, sha256 $sha, 8 bytes, stage co2, version 3)" "" \
    -- "$bin" verify --trust keys m.wasm
cp m.wasm u.wasm
check "verify unsigned" 1 "" "isoflow: verify: u.wasm: unsigned" \
    -- "$bin" verify --trust keys u.wasm
cp m.wasm t.wasm
printf '\x01' >>t.wasm
check "verify tampered" 1 "" "isoflow: verify: t.wasm: tampered (SHA-256 mismatch)" \
    -- "$bin" verify --trust keys t.wasm m.wasm.sig
check "verify unknown key" 1 "" "isoflow: verify: m.wasm: unknown key $oid" \
    -- "$bin" verify --trust keys m.wasm other.sig
check "verify trusting both" 0 "m.wasm: ok (key other $oid, sha256 $sha, 8 bytes)" "" \
    -- "$bin" verify --trust keys,other/other.pub m.wasm other.sig
sed 's/^version 3$/version 4/' m.wasm.sig >edited.sig
check "verify edited" 1 "" "isoflow: verify: m.wasm: bad signature" \
    -- "$bin" verify --trust keys m.wasm edited.sig
sed 's/^size 8$/size 08/' m.wasm.sig >malformed.sig
check "verify malformed" 1 "" "isoflow: verify: m.wasm: malformed signature: line 4: bad size" \
    -- "$bin" verify --trust keys m.wasm malformed.sig
check "verify no trust" 2 "" "isoflow: verify needs --trust DIR (the trusted public keys)" \
    -- "$bin" verify m.wasm
mkdir empty
check "verify empty trust dir" 1 "" "isoflow: verify: no trusted keys (*.pub) in 'empty'" \
    -- "$bin" verify --trust empty m.wasm

# help and usage
for c in "key" "key gen" "sign" "verify"; do
    # shellcheck disable=SC2086
    "$bin" $c --help >"$tmp/stdout" 2>&1
    expect "$c --help: exit" 0 $?
    expect "$c --help: usage line" 1 "$(head -1 "$tmp/stdout" | grep -c "^usage: isoflow $c")"
done
"$bin" sign >/dev/null 2>"$tmp/stderr"
expect "sign alone: exit" 2 $?
check "key bad sub" 2 "" "isoflow: unknown key command 'rm' (see 'isoflow key --help')" \
    -- "$bin" key rm
for c in key sign verify; do
    "$bin" --help | grep -q "^  $c " && ok || bad "$c listed in isoflow --help"
done

finish cli-deploy
