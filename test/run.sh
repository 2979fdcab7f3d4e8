#!/bin/bash
# run.sh — runs the test suites and prints one closing line "N passed, N failed[, N skipped]".
#
# Suites (VGP_SUITES, default all of them, in this order):
#   unit         criterion unit tests of the default build
#   integration  test/integration/*.sh against the default build (fixture nodes, simulated kernel, fake kubelet)
#   asan         the unit tests and integration scripts again, built with ASan+UBSan (build/asan)
#   valgrind     the unit tests and the integration scripts marked "# valgrind: yes", every plugin process
#                under valgrind (zero errors, zero definite or indirect leaks)
#   e2e          test/e2e/run.sh: qemu guest with a real kernel, IOMMU and vfio-pci
# VGP_ONLY=GLOB runs only the integration scripts whose name (without .sh) matches, e.g. VGP_ONLY='serve_*'.
# VGP_JOBS=N runs N integration scripts (and N unit-test binaries) at a time (default 2; 1 = one after another).
# VGP_TMPDIR: where the scripts make their scratch trees (default /dev/shm when it is a tmpfs with 1 GiB free: a fixture
# node is hundreds of small files, which a tmpfs makes and removes several times faster than a disk; else /tmp).
# An integration script passes with exit 0, skips with 77, fails otherwise; its output is shown on failure.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
SUITES=${VGP_SUITES:-"unit integration asan valgrind e2e"}
# Where the builds are (the Makefile's OUT/BIN for the default and the SAN=1 build).
OUT_DEFAULT=${VGP_OUT:-build/default}
BIN_DEFAULT=${VGP_BINDIR:-bin}
OUT_ASAN=${VGP_ASAN_OUT:-build/asan}
pass=0 fail=0 skip=0
failed=()
LOGDIR=$(mktemp -d /tmp/vgp-test.XXXXXX)
if [ -z "${VGP_TMPDIR:-}" ]; then
	VGP_TMPDIR=/tmp
	if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ] &&
		[ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -ge 1048576 ] 2>/dev/null; then
		VGP_TMPDIR=/dev/shm
	fi
fi
export VGP_TMPDIR

# A pool of background jobs (VGP_JOBS at a time, default 2: most of a script's time is spent waiting on the
# simulated kernel, timeouts and child processes, and a valgrind'd unit test leaves a CPU half idle). Each job's
# output goes to its log; its exit code and seconds to $log.rc when it ends. `running` (pid -> log) is the caller's.
start_job() { # $1 = log, $2... = command
	local log=$1
	shift
	(
		start=$(date +%s)
		"$@" >"$log" 2>&1
		echo "$? $(( $(date +%s) - start ))" >"$log.rc.new" && mv "$log.rc.new" "$log.rc"
	) &
	running[$!]=$log
}

# Report every job that has ended (its $log.rc is there, or its wrapper is gone without writing one: a failure)
# and reap it.
reap_jobs() { # $1 = label
	local label=$1 pid log name rc secs w
	for pid in "${!running[@]}"; do
		log=${running[$pid]}
		if [ ! -f "$log.rc" ]; then
			kill -0 "$pid" 2>/dev/null && continue
			wait "$pid" 2>/dev/null
			w=$?
			[ -f "$log.rc" ] || echo "$((w ? w : 1)) 0" >"$log.rc"
		fi
		wait "$pid" 2>/dev/null
		unset "running[$pid]"
		read -r rc secs <"$log.rc"
		name=$(basename "$log" .log)
		name=${name#"$label"-}
		if [ "$rc" -eq 0 ]; then
			pass=$((pass + 1)); echo "ok    $label $name (${secs}s)"
		elif [ "$rc" -eq 77 ]; then
			skip=$((skip + 1)); echo "skip  $label $name: $(tail -n 1 "$log")"
		else
			fail=$((fail + 1)); failed+=("$label $name"); echo "FAIL  $label $name (exit $rc)"; tail -n 60 "$log"
		fi
		grep -h '^\[====\] Synthesis' "$log" | sed "s/^/      /"
	done
}

# Wait until fewer than $2 jobs run (1: until none does).
pool_below() { # $1 = label, $2 = limit
	while [ ${#running[@]} -gt 0 ] && [ ${#running[@]} -ge "${2:-1}" ]; do
		wait -n 2>/dev/null
		reap_jobs "$1"
	done
}

run_units() { # $1 = build dir, $2 = label, $3 = wrapper
	local dir=$1 label=$2 wrap=${3:-} jobs=${VGP_JOBS:-2}
	local -A running=()
	for t in "$dir"/test/test_*; do
		[ -x "$t" ] || continue
		pool_below "$label" "$jobs"
		# shellcheck disable=SC2086
		start_job "$LOGDIR/$label-$(basename "$t").log" $wrap "$t" --jobs 2
	done
	pool_below "$label" 1
}

# The integration scripts, VGP_JOBS at a time. Each script has its own scratch directory, network namespace or
# loopback ports the kernel picks, so they do not meet; a script marked "# serial: yes" runs alone.
run_scripts() { # $1 = bin dir, $2 = label, $3 = wrapper for plugin processes, $4 = only marked scripts
	local bindir=$1 label=$2 wrap=${3:-} only=${4:-} jobs=${VGP_JOBS:-2}
	local -A running=()
	for s in test/integration/*.sh; do
		[ -f "$s" ] || continue
		case "$(basename "$s")" in lib*.sh) continue ;; esac
		if [ -n "$only" ] && ! grep -q '^# valgrind: yes' "$s"; then continue; fi
		local name serial=
		name=$(basename "$s" .sh)
		# shellcheck disable=SC2254
		case "$name" in ${VGP_ONLY:-*}) ;; *) continue ;; esac
		grep -q '^# serial: yes' "$s" && serial=1
		pool_below "$label" "$([ -n "$serial" ] && echo 1 || echo "$jobs")"
		start_job "$LOGDIR/$label-$name.log" env VGP_ROOT="$ROOT" VGP_BIN="$ROOT/$bindir" VGP_WRAP="$wrap" bash "$s"
		[ -z "$serial" ] || pool_below "$label" 1
	done
	pool_below "$label" 1
}

VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --track-fds=no"
for suite in $SUITES; do
	echo "== $suite"
	suite_start=$(date +%s)
	case $suite in
	unit) run_units "$OUT_DEFAULT" unit ;;
	integration) run_scripts "$BIN_DEFAULT" integration ;;
	asan)
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=98
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=97
		run_units "$OUT_ASAN" asan
		run_scripts "$OUT_ASAN/bin" asan
		unset ASAN_OPTIONS UBSAN_OPTIONS ;;
	valgrind)
		run_units "$OUT_DEFAULT" valgrind "$VALGRIND --trace-children=yes --trace-children-skip=*python*,*/sh,*/bash,*/env,*/unshare"
		# --child-silent-after-fork (plugin processes only; the unit tests keep every report): a
		# child the bind engine's workers fork for an unbind write ends with _exit while the other workers'
		# memory is referenced only from their stacks, which the child lacks: its leak check called that lost and
		# wrote it into the plugin's output. The parent's own check at its exit covers the same memory.
		run_scripts "$BIN_DEFAULT" valgrind "$VALGRIND --child-silent-after-fork=yes" only-marked ;;
	e2e)
		log="$LOGDIR/e2e.log"
		start=$(date +%s)
		VGP_ROOT=$ROOT VGP_BIN=$ROOT/$BIN_DEFAULT bash test/e2e/run.sh >"$log" 2>&1
		rc=$?
		if [ $rc -eq 0 ]; then
			n=$(grep -c '^e2e ok ' "$log"); pass=$((pass + n)); echo "ok    e2e ($n scenarios, $(( $(date +%s) - start ))s)"
			grep '^e2e ok ' "$log" | sed 's/^/      /'
		elif [ $rc -eq 77 ]; then
			skip=$((skip + 1)); echo "skip  e2e: $(tail -n 1 "$log")"
		else
			fail=$((fail + 1)); failed+=("e2e"); echo "FAIL  e2e (exit $rc)"; tail -n 120 "$log"
		fi ;;
	*) echo "unknown suite $suite"; fail=$((fail + 1)) ;;
	esac
	echo "== $suite: $(( $(date +%s) - suite_start ))s"
done

echo
((${#failed[@]})) && printf 'failed: %s\n' "${failed[@]}"
echo "logs: $LOGDIR"
if [ $skip -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ $fail -eq 0 ]
