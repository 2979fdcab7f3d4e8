#!/bin/bash
# run.sh — builds the libFuzzer targets (test/fuzz/fuzz_*.c) with clang and runs them.
#
#   test/fuzz/run.sh [SECONDS]       `make fuzz`: each target fuzzes for SECONDS (default 60), starting from the
#                                    seed corpus test/fuzz/corpus/<target>/ and the regression inputs; new inputs
#                                    go to build/fuzz/corpus/<target>/ (the seeds are not changed), a crash
#                                    leaves its input in build/fuzz/crashes/<target>/ and fails the run.
#   test/fuzz/run.sh --smoke [SEC]   `make test` (test/integration/fuzz_smoke.sh): replay every seed and
#                                    regression input once, then fuzz SEC seconds (default 5) per target.
#   test/fuzz/run.sh --build         build only.
# Env: FUZZ_OUT (default build/fuzz), CLANG (default clang).
#
# The targets are linked with the plugin sources they exercise compiled by clang with the same sanitizers
# (not libvgp.a, which gcc builds with other flags), and a private copy of the protobuf-c code generated
# from proto/api.proto the way the Makefile does it. Every crash found becomes an input in
# test/fuzz/regressions/<target>/ with a fix and a unit test.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${FUZZ_OUT:-$ROOT/build/fuzz}
CLANG=${CLANG:-clang}
MODE=fuzz
case "${1:-}" in
--smoke) MODE=smoke; SECS=${2:-5} ;;
--build) MODE=build; SECS=0 ;;
*) SECS=${1:-60} ;;
esac

TARGETS=(fuzz_config fuzz_requests)
declare -A SRCS=(
	[fuzz_config]="plugin/config.c plugin/config_parse.c plugin/config_errors.c plugin/config_cli.c plugin/names.c plugin/error.c plugin/util.c plugin/log.c"
	[fuzz_requests]="plugin/allocate.c plugin/preferred.c plugin/names.c plugin/error.c plugin/util.c plugin/log.c"
)

command -v "$CLANG" >/dev/null || { echo "no $CLANG (install clang and libclang-rt-14-dev: hack/install-deps.sh)"; exit 77; }
mkdir -p "$OUT"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void) d; (void) n; return 0; }' >"$OUT/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address "$OUT/probe.c" -o "$OUT/probe" 2>/dev/null; then
	echo "clang has no libFuzzer runtime (Debian: libclang-rt-14-dev)"
	exit 77
fi

mkdir -p "$OUT/gen"
if [ ! -f "$OUT/gen/api.pb-c.c" ] || [ proto/api.proto -nt "$OUT/gen/api.pb-c.c" ]; then
	sed '/^service /,/^}/d' proto/api.proto >"$OUT/gen/api.proto"
	protoc-c --proto_path="$OUT/gen" --c_out="$OUT/gen" "$OUT/gen/api.proto"
fi

PKG_CFLAGS=$(pkg-config --cflags libprotobuf-c jansson)
PKG_LIBS=$(pkg-config --libs libprotobuf-c jansson)
FLAGS=(-g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Iplugin -I"$OUT/gen" $PKG_CFLAGS
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
for t in "${TARGETS[@]}"; do
	bin=$OUT/$t
	deps=(test/fuzz/$t.c ${SRCS[$t]} proto/api.proto plugin/*.h test/fuzz/run.sh)
	stale=0
	[ -x "$bin" ] || stale=1
	for d in "${deps[@]}"; do [ "$d" -nt "$bin" ] && stale=1; done
	if [ $stale = 1 ]; then
		echo "build $bin"
		# shellcheck disable=SC2086
		"$CLANG" "${FLAGS[@]}" -o "$bin" test/fuzz/$t.c ${SRCS[$t]} "$OUT/gen/api.pb-c.c" $PKG_LIBS
	fi
done
[ $MODE = build ] && exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
for t in "${TARGETS[@]}"; do
	seeds=test/fuzz/corpus/$t
	regs=test/fuzz/regressions/$t
	mkdir -p "$OUT/crashes/$t" "$OUT/corpus/$t"
	inputs=()
	for f in "$seeds"/* "$regs"/*; do [ -f "$f" ] && inputs+=("$f"); done
	# 1. replay: every seed and regression input once (the binary runs each file given as an argument)
	if [ ${#inputs[@]} -gt 0 ]; then
		if ! "$OUT/$t" -rss_limit_mb=2048 "${inputs[@]}" >"$OUT/$t.replay.log" 2>&1; then
			tail -n 40 "$OUT/$t.replay.log"
			echo "FAIL $t: a seed or regression input crashes"
			rc=1
			continue
		fi
		echo "ok   $t: replayed ${#inputs[@]} inputs"
	fi
	# 2. fuzz for SECS seconds from the seeds + regressions (+ what earlier runs found, for `make fuzz`)
	work=$OUT/corpus/$t
	[ $MODE = smoke ] && { work=$(mktemp -d "$OUT/smoke.XXXXXX"); }
	dirs=("$work" "$seeds")
	[ -d "$regs" ] && [ -n "$(ls -A "$regs")" ] && dirs+=("$regs")
	if "$OUT/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$OUT/crashes/$t/" "${dirs[@]}" >"$OUT/$t.fuzz.log" 2>&1; then
		echo "ok   $t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.fuzz.log" | grep -o '[0-9]*$') runs in ${SECS}s, no crash"
	else
		tail -n 60 "$OUT/$t.fuzz.log"
		echo "FAIL $t: crash input in $OUT/crashes/$t/ (add it to $regs with a fix and a unit test)"
		rc=1
	fi
	[ $MODE = smoke ] && rm -rf "$work"
done
exit $rc
