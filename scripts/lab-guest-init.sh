#!/bin/busybox sh
# dmirror lab: PID 1 of the guest initramfs built by scripts/lab.
#
# It mounts the pseudo file systems the suites need, checks that the memory
# reserved for the coherent devices is real RAM marked reserved, loads
# test_hmm, runs the kernel's hmm-tests and then `dmirror run --backend kernel`
# one case at a time (with BEGIN/END markers in the kernel log), unloads
# test_hmm and sends a tarball of the results to the host over the second
# serial port (/dev/ttyS1) as base64 between two marker lines.
#
# Settings come from /lab/config (written by scripts/lab):
#   LAB_MODE=run|shell  LAB_BENCH=0|1  LAB_SPM0=0x...  LAB_SPM1=0x...
#   LAB_TEST_TIMEOUT=<seconds per case>  LAB_ONLY=<regex of case names or empty>

/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/lab
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts /root
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug

. /lab/config

R=/tmp/results
mkdir -p "$R/kselftest" "$R/dmirror"
: > "$R/notes.txt"

kmsg() { echo "dmirror-lab: $*" > /dev/kmsg; }
note() { echo "$*" >> "$R/notes.txt"; kmsg "$*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

kmsg "init start uptime=$(uptime_s)"

# ---------------------------------------------------------------- environment
{
	echo "uname: $(uname -a)"
	echo "cmdline: $(cat /proc/cmdline)"
	echo "cpus: $(nproc)"
	echo "thp: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
	echo "nr_hugepages: $(cat /proc/sys/vm/nr_hugepages 2>/dev/null)"
	echo "gup_test: $(test -e /sys/kernel/debug/gup_test && echo present || echo missing)"
	grep -E '^(MemTotal|MemFree|HugePages_Total|HugePages_Free|Hugepagesize)' /proc/meminfo
} > "$R/env.txt" 2>&1
cp /proc/iomem "$R/iomem.txt"

# The suite's hugetlb tests want at least one free default huge page.
if [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)" -lt 2 ]; then
	echo 4 > /proc/sys/vm/nr_hugepages 2>/dev/null
fi

# ------------------------------------------------- coherent device memory check
# A range [start, start+256MiB) is usable as special purpose memory when
#  - the firmware reported it as RAM (BIOS-e820 lines in the log),
#  - the kernel's own map after memmap=...$... calls it reserved ("user:" lines),
#  - /proc/iomem shows it as "Reserved" and no "System RAM" overlaps it.
SPM_SIZE=$((256 * 1024 * 1024))

# covers PREFIX PATTERN START: is [START, START+256MiB) inside one [mem a-b] line?
covers() {
	s=$(($3)); e=$((s + SPM_SIZE - 1))
	dmesg -s 67108864 | grep "$1: \[mem " | grep -E "$2" |
		sed 's/.*\[mem 0x\([0-9a-f]*\)-0x\([0-9a-f]*\)\].*/\1 \2/' |
		while read -r a b; do
			if [ $((0x$a)) -le $s ] && [ $((0x$b)) -ge $e ]; then echo yes; fi
		done | grep -q yes
}

# iomem_check START: prints "reserved", "ram" (overlaps System RAM) or "absent"
iomem_check() {
	s=$(($1)); e=$((s + SPM_SIZE - 1)); verdict=absent
	while IFS= read -r line; do
		case "$line" in " "*) continue ;; esac
		range=${line%% : *}; name=${line#* : }
		a=$((0x${range%-*})); b=$((0x${range#*-}))
		case "$name" in
		"System RAM") if [ $a -le $e ] && [ $b -ge $s ]; then echo ram; return; fi ;;
		Reserved) if [ $a -le $s ] && [ $b -ge $e ]; then verdict=reserved; fi ;;
		esac
	done < /proc/iomem
	echo $verdict
}

SPM_OK=1
for a in "$LAB_SPM0" "$LAB_SPM1"; do
	if [ -z "$a" ]; then SPM_OK=0; note "spm: no address given"; continue; fi
	if ! covers BIOS-e820 'usable|System RAM' "$a"; then SPM_OK=0; note "spm: $a is not inside the RAM the firmware gave this guest (BIOS-e820)"; fi
	if ! covers user 'reserved' "$a"; then SPM_OK=0; note "spm: $a is not reserved in the kernel's e820 map (memmap= missing?)"; fi
	case $(iomem_check "$a") in
	reserved) ;;
	ram) SPM_OK=0; note "spm: $a overlaps System RAM in /proc/iomem" ;;
	*) SPM_OK=0; note "spm: $a is not shown as Reserved in /proc/iomem" ;;
	esac
done
echo "$SPM_OK" > "$R/spm.ok"
[ "$SPM_OK" = 1 ] && note "spm: $LAB_SPM0 and $LAB_SPM1 are reserved RAM (256 MiB each)"

# ------------------------------------------------------------------ insmod
kmsg "BEGIN lab insmod"
if [ "$SPM_OK" = 1 ]; then
	insmod /lab/test_hmm.ko spm_addr_dev0="$LAB_SPM0" spm_addr_dev1="$LAB_SPM1" > "$R/insmod.txt" 2>&1
else
	insmod /lab/test_hmm.ko > "$R/insmod.txt" 2>&1
fi
echo $? > "$R/insmod.rc"
kmsg "END lab insmod rc=$(cat "$R/insmod.rc")"
sleep 1
ls -l /dev/hmm_dmirror* > "$R/devices.txt" 2>&1
note "devices: $(ls /dev/hmm_dmirror* 2>/dev/null | tr '\n' ' ')"

if [ "$LAB_MODE" = shell ]; then
	echo
	echo "dmirror lab shell: test_hmm is loaded; /lab holds hmm-tests, dmirror, test_hmm.ko."
	echo "Try: hmm-tests -r hmm.hmm_device_private.migrate ; dmirror run --backend kernel"
	echo "Leave with: exit (or reboot -f)"
	setsid cttyhack sh
	reboot -f
fi

# ------------------------------------------------------------ run one case
# run_case SUITE NAME CMD... : markers in the kernel log, output to a file,
# exit code and guest uptime (start, end) to SUITE.rc. hmm-tests' TAP and
# diagnostics stay in one file (NAME.out) in the order it wrote them;
# dmirror's JSON document goes alone to NAME.json, its stderr to NAME.err.
run_case() {
	suite=$1; name=$2; shift 2
	t0=$(uptime_s)
	kmsg "BEGIN $suite $name"
	if [ "$suite" = dmirror ]; then
		timeout -s KILL "$LAB_TEST_TIMEOUT" "$@" > "$R/$suite/$name.json" 2> "$R/$suite/$name.err" < /dev/null
	else
		timeout -s KILL "$LAB_TEST_TIMEOUT" "$@" > "$R/$suite/$name.out" 2>&1 < /dev/null
	fi
	rc=$?
	t1=$(uptime_s)
	kmsg "END $suite $name rc=$rc"
	echo "$name $rc $t0 $t1" >> "$R/$suite.rc"
}

wanted() {
	case "$1" in
	*.benchmark_thp_migration) [ "$LAB_BENCH" = 1 ] || return 1 ;;
	esac
	[ -z "$LAB_ONLY" ] && return 0
	echo "$1" | grep -Eq "$LAB_ONLY"
}

run_suite() {
	suite=$1; list=$2; shift 2
	n=0
	while read -r name; do wanted "$name" && n=$((n + 1)); done < "$list"
	kmsg "SUITE $suite cases=$n start uptime=$(uptime_s)"
	: > "$R/$suite.rc"
	while read -r name; do
		[ -n "$name" ] || continue
		if wanted "$name"; then
			run_case "$suite" "$name" "$@" -r "$name"
		else
			echo "$name notrun 0 0" >> "$R/$suite.rc"
		fi
	done < "$list"
	kmsg "SUITE $suite end uptime=$(uptime_s)"
}

# ------------------------------------------------------ the kernel's C suite
# `hmm-tests -l` prints a table (fixture, variant, test columns of width 20
# and 25) on stderr; expand it to fixture.variant.test names in run order.
/lab/hmm-tests -l 2> "$R/kselftest.listing" > "$R/kselftest.listing.stdout"
awk '
function flush(  i, j) {
	if (fx == "") return
	if (nv == 0) { for (j = 0; j < nt; j++) print fx "." ts[j] }
	for (i = 0; i < nv; i++) for (j = 0; j < nt; j++) print fx "." vs[i] "." ts[j]
	fx = ""; nv = 0; nt = 0
}
/^# FIXTURE/ { table = 1; next }
!table || /^#/ || /^\[/ { next }
/^----/ { flush(); next }
{
	f = substr($0, 1, 20); v = substr($0, 22, 25); t = substr($0, 48)
	gsub(/ /, "", f); gsub(/ /, "", v); gsub(/ /, "", t)
	if (f != "") { flush(); fx = f }
	if (v != "") vs[nv++] = v
	if (t != "") ts[nt++] = t
}
END { flush() }' "$R/kselftest.listing" > "$R/kselftest.list"
note "kselftest: $(wc -l < "$R/kselftest.list") cases listed"
run_suite kselftest "$R/kselftest.list" /lab/hmm-tests

# ------------------------------------------------------------------- dmirror
if [ -x /lab/dmirror ]; then
	/lab/dmirror list > "$R/dmirror.list" 2> "$R/dmirror.list.err"
	rc=$?
	echo "$rc" > "$R/dmirror.list.rc"
	if [ "$rc" = 0 ] && [ -s "$R/dmirror.list" ]; then
		note "dmirror: runs in the guest, $(wc -l < "$R/dmirror.list") cases listed"
		run_suite dmirror "$R/dmirror.list" /lab/dmirror run --backend kernel --format json --trace "$R/dmirror-traces"
	else
		note "dmirror: 'dmirror list' failed in the guest (exit $rc): $(head -c 300 "$R/dmirror.list.err")"
	fi
fi

# ------------------------------------------------------------------ rmmod
# A case killed by a timeout may still be tearing down its mm (and dropping
# device pages) for a moment, so try a few times before calling it a failure.
kmsg "BEGIN lab rmmod"
: > "$R/rmmod.txt"
tries=0
while :; do
	tries=$((tries + 1))
	echo "try $tries: refcnt=$(cat /sys/module/test_hmm/refcnt 2>/dev/null)" >> "$R/rmmod.txt"
	rmmod test_hmm >> "$R/rmmod.txt" 2>&1
	rc=$?
	[ "$rc" = 0 ] && break
	if [ "$tries" = 1 ]; then ps >> "$R/rmmod.txt" 2>&1; fi
	[ "$tries" -ge 10 ] && break
	sleep 3
done
echo "$rc" > "$R/rmmod.rc"
echo "$tries" > "$R/rmmod.tries"
kmsg "END lab rmmod rc=$rc tries=$tries"
lsmod > "$R/lsmod.txt" 2>&1

# ------------------------------------------------------------ send results
kmsg "done uptime=$(uptime_s)"
dmesg -s 67108864 > "$R/dmesg.txt" 2>&1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
{
	echo "===DMIRROR-LAB-RESULTS-BEGIN==="
	tar -C /tmp -cf - results | gzip -1 | base64
	echo "===DMIRROR-LAB-RESULTS-END==="
} > /dev/ttyS1
sync
# no ACPI sleep support in the guest, so power-off would only halt: reboot,
# which qemu (-no-reboot) turns into an exit
reboot -f
