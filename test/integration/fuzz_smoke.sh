#!/bin/bash
# fuzz_smoke.sh — the libFuzzer targets (test/fuzz/) in `make test`: builds them with clang, replays every seed
# (test/fuzz/corpus/<target>/) and regression input (test/fuzz/regressions/<target>/), then fuzzes each target
# for a few seconds (FUZZ_SMOKE_SECONDS, default 5). `make fuzz` runs them longer. Skips without clang's
# libFuzzer runtime. The targets carry their own sanitizers, so this runs once (not again per build flavour).
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
case "$VGP_BIN" in
*asan*) skip "the fuzz targets are already built with ASan+UBSan: run once, in the integration suite" ;;
esac
[ -z "$VGP_WRAP" ] || skip "not under a wrapper (the fuzz targets run under their own sanitizers)"
out=$(mktemp -d /tmp/vgp-fuzz.XXXXXX)
trap 'rm -rf "$out"' EXIT
set +e
FUZZ_OUT=$out "$VGP_ROOT/test/fuzz/run.sh" --smoke "${FUZZ_SMOKE_SECONDS:-5}"
rc=$?
set -e
[ $rc = 77 ] && skip "no clang with libFuzzer (libclang-rt-14-dev)"
[ $rc = 0 ] || fail "fuzz smoke run failed"
ok "fuzz targets: seeds and regressions replayed, short fuzzing clean"
